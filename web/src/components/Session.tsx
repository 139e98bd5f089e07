"use client";
// Who is signed in, for the whole app: pages read it to show only what the role may use.
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { usePathname } from "next/navigation";
import Link from "next/link";
import { useEffect, type ReactNode } from "react";
import { api, mayAct, SIGN_IN_PATH, type Role, type User } from "@/api/client";
import { ErrorNote, Skeleton } from "./States";

export function useUser(): User | undefined {
  const { data } = useQuery({ queryKey: ["me"], queryFn: api.me, staleTime: 60_000 });
  return data;
}

const NAV: { href: string; label: string; role: Role }[] = [
  { href: "/", label: "Overview", role: "viewer" },
  { href: "/live/", label: "Live", role: "viewer" },
  { href: "/frames/", label: "Frames", role: "viewer" },
  { href: "/review/", label: "Review", role: "reviewer" },
  { href: "/devices/", label: "Devices", role: "viewer" },
  { href: "/drift/", label: "Drift", role: "viewer" },
  { href: "/models/", label: "Models", role: "viewer" },
  { href: "/jobs/", label: "Retraining & jobs", role: "viewer" },
  { href: "/users/", label: "Users", role: "admin" },
];

const PASSWORD_PATH = "/password/";

function isCurrent(pathname: string, href: string): boolean {
  return href === "/" ? pathname === "/" : pathname.startsWith(href.replace(/\/$/, ""));
}

/** The frame of every signed-in page: navigation, the person and sign-out; sign-in is bare. */
export function Shell({ children }: { children: ReactNode }) {
  const pathname = usePathname() ?? "/";
  const bare = pathname.startsWith(SIGN_IN_PATH.replace(/\/$/, ""));
  const me = useQuery({ queryKey: ["me"], queryFn: api.me, staleTime: 60_000, enabled: !bare });
  const queryClient = useQueryClient();
  const mustChange = !bare && me.data?.must_change_password === true;
  const changing = pathname.startsWith(PASSWORD_PATH.replace(/\/$/, ""));
  useEffect(() => {
    // An admin reset the password: nothing else works until it is changed.
    if (mustChange && !changing) window.location.assign(`${PASSWORD_PATH}?next=${encodeURIComponent(pathname)}`);
  }, [mustChange, changing, pathname]);
  if (bare) return <>{children}</>;

  async function signOut() {
    await api.logout().catch(() => undefined);
    queryClient.clear();
    window.location.assign(SIGN_IN_PATH);
  }

  const user = me.data;
  return (
    <>
      <header className="topbar">
        <Link href="/" className="brand">
          visionloop
        </Link>
        <nav aria-label="Pages">
          {NAV.filter((item) => user === undefined || mayAct(user, item.role)).map((item) => (
            <Link key={item.href} href={item.href} aria-current={isCurrent(pathname, item.href) ? "page" : undefined}>
              {item.label}
            </Link>
          ))}
        </nav>
        <div className="who">
          {user ? (
            <>
              <span data-testid="who">
                {user.name} <span className="badge">{user.role}</span>
              </span>
              <Link href={PASSWORD_PATH}>Password</Link>
              <button type="button" className="link" onClick={signOut}>
                Sign out
              </button>
            </>
          ) : (
            <Skeleton width="8em" />
          )}
        </div>
      </header>
      <main>
        {me.isError && <ErrorNote what="Checking your session" error={me.error} />}
        {children}
      </main>
    </>
  );
}
