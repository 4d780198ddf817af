import { Suspense } from "react";
import { NavLink, Outlet } from "react-router";

import { roleAllows } from "../auth/roles";
import { useSession } from "../auth/session";
import { timeZone } from "../lib/format";
import { PAGES } from "../routes";
import { Loading } from "./Feedback";

export function Layout() {
  const { session, signOut } = useSession();
  const role = session?.role;
  return (
    <div className="shell">
      <header className="topbar">
        <NavLink to="/" className="brand">
          EdgePlane
        </NavLink>
        <nav className="mainnav" aria-label="Main">
          {PAGES.filter((page) => page.nav !== undefined && roleAllows(role, page.role)).map((page) => (
            <NavLink key={page.path} to={page.path} end={page.path === "/"}>
              {page.nav}
            </NavLink>
          ))}
        </nav>
        <div className="account">
          <span className="account-name" data-testid="account">
            {session?.username} <span className={`badge badge-role`}>{role}</span>
          </span>
          <button type="button" className="button-link" onClick={() => void signOut()}>
            Sign out
          </button>
        </div>
      </header>
      <main className="content">
        <Suspense fallback={<Loading what="page" />}>
          <Outlet />
        </Suspense>
      </main>
      <footer className="footer muted small">Times are shown in {timeZone}.</footer>
    </div>
  );
}
