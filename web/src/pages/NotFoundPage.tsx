import { Link } from "react-router";

import type { Role } from "../api/client";
import { usePageTitle } from "../lib/usePageTitle";

export function NotFoundPage() {
  usePageTitle("Not found");
  return (
    <section>
      <div className="page-head">
        <h1>Page not found</h1>
      </div>
      <p>
        There is no page here. Go to the <Link to="/">overview</Link>.
      </p>
    </section>
  );
}

export function RoleRequiredPage({ role }: { role: Role }) {
  usePageTitle("Not allowed");
  return (
    <section>
      <div className="page-head">
        <h1>Not allowed</h1>
      </div>
      <p>
        This page needs the <strong>{role}</strong> role. Ask an administrator if you need it.
      </p>
    </section>
  );
}
