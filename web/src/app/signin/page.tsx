"use client";
import { useState, type FormEvent } from "react";
import { api, ApiError } from "@/api/client";

/** Where to go after signing in: the page that sent us here, if it is one of ours. */
function nextPath(): string {
  const next = new URLSearchParams(window.location.search).get("next");
  return next && next.startsWith("/") && !next.startsWith("//") && !next.startsWith("/signin") ? next : "/";
}

export default function SignInPage() {
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function onSubmit(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    setBusy(true);
    setError(null);
    try {
      const user = await api.login(String(form.get("username") ?? ""), String(form.get("password") ?? ""));
      window.location.assign(
        user.must_change_password ? `/password/?next=${encodeURIComponent(nextPath())}` : nextPath(),
      );
    } catch (e) {
      setError(
        e instanceof ApiError
          ? e.status === 401
            ? "Wrong user name or password."
            : e.status === 0
              ? "The server cannot be reached: is it running?"
              : e.detail
          : String(e),
      );
      setBusy(false);
    }
  }

  return (
    <main className="signin">
      <form onSubmit={onSubmit} className="card" aria-labelledby="signin-title">
        <h1 id="signin-title">Sign in to visionloop</h1>
        <label>
          User name
          <input name="username" autoComplete="username" required autoFocus />
        </label>
        <label>
          Password
          <input name="password" type="password" autoComplete="current-password" required />
        </label>
        {error && (
          <p role="alert" className="note note-error">
            ⚠ {error}
          </p>
        )}
        <button type="submit" className="primary" disabled={busy}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
        <p className="muted small">
          Admins add accounts on the Users page or with <code>visionloop users add</code>; <code>make demo</code> prints an
          admin&apos;s password.
        </p>
      </form>
    </main>
  );
}
