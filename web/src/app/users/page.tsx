"use client";
// People's lifecycle (admins): add, change role, disable and enable, reset a password, sign out
// everywhere, delete; and the audit list of those changes.
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { api, mayAct, type Person, type Role } from "@/api/client";
import { Confirm } from "@/components/Confirm";
import { SecretOnce } from "@/components/SecretOnce";
import { useUser } from "@/components/Session";
import { Empty, ErrorNote, SkeletonRows, Source } from "@/components/States";
import { RelativeTime } from "@/components/Time";

const EVERY_S = 10;
const ROLES: Role[] = ["viewer", "reviewer", "admin"];

type Action = "role" | "disable" | "enable" | "reset" | "sign-out" | "delete";
type Pending = { person: Person; action: Action };

const TITLE: Record<Action, string> = {
  role: "Change the role of",
  disable: "Disable",
  enable: "Enable",
  reset: "Reset the password of",
  "sign-out": "Sign out everywhere:",
  delete: "Delete",
};
const EXPLAIN: Record<Action, string> = {
  role: "The new role applies to their next request.",
  disable: "Their sessions end at once and they cannot sign in until enabled again.",
  enable: "They can sign in again with their password.",
  reset: "Their sessions end; a temporary password is shown once here, and they must change it when they sign in.",
  "sign-out": "Every session of theirs ends; they can sign in again.",
  delete: "Their password and sessions go; their reviews keep their name, which nobody else can take. This cannot be undone.",
};
const CONFIRM: Record<Action, string> = {
  role: "Change role",
  disable: "Disable",
  enable: "Enable",
  reset: "Reset password",
  "sign-out": "Sign out everywhere",
  delete: "Delete",
};

function status(p: Person): string {
  if (p.deleted_at) return "deleted";
  if (p.disabled) return "disabled";
  if (p.must_change_password) return "must change password";
  return "active";
}

/** A password shown once, with a copy button. */
function PasswordOnce({ name, password, onDone }: { name: string; password: string; onDone: () => void }) {
  return (
    <SecretOnce secret={password} testId="temporary-password" onDone={onDone}>
      Temporary password of <strong>{name}</strong>, shown once: pass it on; they choose their own when they sign in.
    </SecretOnce>
  );
}

export default function UsersPage() {
  const me = useUser();
  const admin = mayAct(me, "admin");
  const queryClient = useQueryClient();
  const [showDeleted, setShowDeleted] = useState(false);
  const people = useQuery({
    queryKey: ["users", showDeleted],
    queryFn: () => api.users(showDeleted),
    refetchInterval: EVERY_S * 1000,
    enabled: admin,
  });
  const audit = useQuery({ queryKey: ["audit"], queryFn: api.audit, refetchInterval: EVERY_S * 1000, enabled: admin });
  const [pending, setPending] = useState<Pending | null>(null);
  const [newRole, setNewRole] = useState<Role>("viewer");
  const [secret, setSecret] = useState<{ name: string; password: string } | null>(null);
  const [result, setResult] = useState<string | null>(null);

  function refresh() {
    void queryClient.invalidateQueries({ queryKey: ["users"] });
    void queryClient.invalidateQueries({ queryKey: ["audit"] });
  }

  const add = useMutation({
    mutationFn: ({ name, role }: { name: string; role: Role }) => api.addUser(name, role),
    onSuccess: (answer) => {
      if (answer.temporary_password) setSecret({ name: answer.person.name, password: answer.temporary_password });
      setResult(`${answer.person.name} added as ${answer.person.role}.`);
      refresh();
    },
  });
  const act = useMutation({
    mutationFn: async ({ person, action, role }: Pending & { role: Role }): Promise<string> => {
      switch (action) {
        case "role":
          await api.setUserRole(person.id, role);
          return `${person.name} is now ${role}.`;
        case "disable":
        case "enable":
          await api.setUserEnabled(person.id, action === "enable");
          return `${person.name}: ${action}d.`;
        case "reset": {
          const done = await api.resetPassword(person.id);
          if (done.temporary_password) setSecret({ name: person.name, password: done.temporary_password });
          return `${person.name}: password reset.`;
        }
        case "sign-out": {
          const done = await api.signOutUser(person.id);
          return `${person.name}: ${done.sessions_ended} session(s) ended.`;
        }
        case "delete":
          await api.deleteUser(person.id);
          return `${person.name}: deleted.`;
      }
    },
    onSuccess: (message) => {
      setResult(message);
      refresh();
    },
  });

  function onAdd(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const form = event.currentTarget;
    const data = new FormData(form);
    const name = String(data.get("name") ?? "").trim();
    const role = String(data.get("role") ?? "viewer") as Role;
    if (name) add.mutate({ name, role }, { onSuccess: () => form.reset() });
  }

  function ask(person: Person, action: Action) {
    setNewRole(person.role);
    setResult(null);
    setPending({ person, action });
  }

  if (me && !admin) {
    return (
      <>
        <div className="page-head">
          <h1>Users</h1>
        </div>
        <p className="muted">Only admins manage people. Ask an admin to change your role or reset your password.</p>
      </>
    );
  }

  return (
    <>
      <div className="page-head">
        <h1>Users</h1>
      </div>
      <Source paths={["/api/v1/users", "/api/v1/users/audit"]} updatedAt={people.dataUpdatedAt} everyS={EVERY_S} />
      {people.isError && <ErrorNote what="Loading people" error={people.error} />}
      <form className="inline-form" onSubmit={onAdd} aria-label="Add a person">
        <label>
          New user name <input name="name" required maxLength={128} placeholder="ada" autoComplete="off" />
        </label>
        <label>
          Role{" "}
          <select name="role" defaultValue="viewer">
            {ROLES.map((r) => (
              <option key={r} value={r}>
                {r}
              </option>
            ))}
          </select>
        </label>
        <button type="submit" className="primary" disabled={add.isPending}>
          Add person
        </button>
      </form>
      {add.isError && <ErrorNote what="Adding the person" error={add.error} />}
      {act.isError && <ErrorNote what="Changing the account" error={act.error} />}
      {secret && <PasswordOnce name={secret.name} password={secret.password} onDone={() => setSecret(null)} />}
      {result && (
        <p className="note" role="status">
          ✓ {result}
        </p>
      )}
      <label className="small">
        <input type="checkbox" checked={showDeleted} onChange={(e) => setShowDeleted(e.target.checked)} /> Show deleted people
      </label>
      <div className="table-wrap">
      <table className="data" aria-label="People">
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Role</th>
            <th scope="col">Status</th>
            <th scope="col">Last sign-in</th>
            <th scope="col" className="num">
              Sessions
            </th>
            <th scope="col" className="num">
              Reviews
            </th>
            <th scope="col">Actions</th>
          </tr>
        </thead>
        <tbody>
          {people.data === undefined ? (
            <SkeletonRows rows={3} cols={7} />
          ) : (
            people.data.map((p) => {
              const self = me?.id === p.id;
              return (
                <tr key={p.id} data-testid={`person-${p.name}`}>
                  <td>
                    {p.name}
                    {self && <span className="muted"> (you)</span>}
                  </td>
                  <td>
                    <span className="badge">{p.role}</span>
                  </td>
                  <td>{p.deleted_at || p.disabled ? <span className="state state-warn">⊘ {status(p)}</span> : status(p)}</td>
                  <td>
                    <RelativeTime iso={p.last_sign_in_at} />
                  </td>
                  <td className="num">{p.sessions.toLocaleString()}</td>
                  <td className="num">{p.reviews.toLocaleString()}</td>
                  <td className="row-actions">
                    {!p.deleted_at && (
                      <>
                        {!self && (
                          <button type="button" onClick={() => ask(p, "role")}>
                            Change role
                          </button>
                        )}
                        {!self && (
                          <button type="button" onClick={() => ask(p, p.disabled ? "enable" : "disable")}>
                            {p.disabled ? "Enable" : "Disable"}
                          </button>
                        )}
                        {!self && (
                          <button type="button" onClick={() => ask(p, "reset")}>
                            Reset password
                          </button>
                        )}
                        <button type="button" onClick={() => ask(p, "sign-out")}>
                          Sign out everywhere
                        </button>
                        {!self && (
                          <button type="button" onClick={() => ask(p, "delete")}>
                            Delete
                          </button>
                        )}
                      </>
                    )}
                  </td>
                </tr>
              );
            })
          )}
        </tbody>
      </table>
      </div>
      {people.data?.length === 0 && <Empty>No people yet: add one above, or with `visionloop users add`.</Empty>}

      <h2>Audit</h2>
      <p className="muted small">Every change to an account, newest first (the latest 50): who made it, when, and to whom.</p>
      {audit.isError && <ErrorNote what="Loading the audit list" error={audit.error} />}
      <div className="table-wrap">
      <table className="data" aria-label="Audit">
        <thead>
          <tr>
            <th scope="col">When</th>
            <th scope="col">Who</th>
            <th scope="col">Action</th>
            <th scope="col">Person</th>
            <th scope="col">Detail</th>
          </tr>
        </thead>
        <tbody>
          {audit.data === undefined ? (
            <SkeletonRows rows={3} cols={5} />
          ) : (
            audit.data.map((e) => (
              <tr key={e.id}>
                <td>
                  <RelativeTime iso={e.at} />
                </td>
                <td>{e.actor}</td>
                <td>{e.action.replace("_", " ")}</td>
                <td>{e.target ?? "–"}</td>
                <td className="muted">{e.detail ?? ""}</td>
              </tr>
            ))
          )}
        </tbody>
      </table>
      </div>
      {audit.data?.length === 0 && <Empty>No account changes recorded yet.</Empty>}

      {pending && (
        <Confirm
          title={`${TITLE[pending.action]} ${pending.person.name}?`}
          confirmLabel={CONFIRM[pending.action]}
          confirmDisabled={pending.action === "role" && newRole === pending.person.role}
          onCancel={() => setPending(null)}
          onConfirm={() => {
            act.mutate({ ...pending, role: newRole });
            setPending(null);
          }}
        >
          {pending.action === "role" && (
            <label>
              New role{" "}
              <select value={newRole} onChange={(e) => setNewRole(e.target.value as Role)}>
                {ROLES.map((r) => (
                  <option key={r} value={r}>
                    {r}
                  </option>
                ))}
              </select>
            </label>
          )}
          <p>{EXPLAIN[pending.action]}</p>
        </Confirm>
      )}
    </>
  );
}
