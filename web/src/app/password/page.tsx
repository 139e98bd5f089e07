"use client";
// Changing one's own password: required after an admin reset it (or made the account).
import { useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { api, ApiError } from "@/api/client";
import { useUser } from "@/components/Session";

/** Where to go afterwards: the page that sent us here, if it is one of ours. */
function nextPath(): string {
  const next = new URLSearchParams(window.location.search).get("next");
  return next && next.startsWith("/") && !next.startsWith("//") && !next.startsWith("/password") ? next : "/";
}

export default function PasswordPage() {
  const user = useUser();
  const queryClient = useQueryClient();
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function onSubmit(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    const current = String(form.get("current") ?? "");
    const next = String(form.get("new") ?? "");
    if (next !== String(form.get("repeat") ?? "")) {
      setError("The new password and its repetition differ.");
      return;
    }
    setBusy(true);
    setError(null);
    try {
      await api.changePassword(current, next);
      await queryClient.invalidateQueries({ queryKey: ["me"] });
      window.location.assign(nextPath());
    } catch (e) {
      setError(e instanceof ApiError ? (e.status === 0 ? "The server cannot be reached." : e.detail) : String(e));
      setBusy(false);
    }
  }

  return (
    <>
      <div className="page-head">
        <h1>Change your password</h1>
      </div>
      {user?.must_change_password && (
        <p className="note" role="status">
          An admin set a temporary password for you: choose your own to go on.
        </p>
      )}
      <form onSubmit={onSubmit} className="card" aria-label="Change your password">
        <label>
          Current password
          <input name="current" type="password" autoComplete="current-password" required />
        </label>
        <label>
          New password
          <input name="new" type="password" autoComplete="new-password" required minLength={8} maxLength={1024} />
        </label>
        <label>
          New password again
          <input name="repeat" type="password" autoComplete="new-password" required minLength={8} maxLength={1024} />
        </label>
        <p className="muted small">
          At least 8 characters; not one of the most common passwords, nor your user name. Your other sessions end.
        </p>
        {error && (
          <p role="alert" className="note note-error">
            ⚠ {error}
          </p>
        )}
        <button type="submit" className="primary" disabled={busy}>
          {busy ? "Changing…" : "Change password"}
        </button>
      </form>
    </>
  );
}
