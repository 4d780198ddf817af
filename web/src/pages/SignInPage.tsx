import { useState, type SubmitEvent } from "react";
import { Navigate, useLocation } from "react-router";

import { useSession } from "../auth/session";
import { ErrorBanner, Notice } from "../components/Feedback";
import { usePageTitle } from "../lib/usePageTitle";
import { useSubmit } from "../lib/useSubmit";

function destination(state: unknown): string {
  if (typeof state === "object" && state !== null && "from" in state && typeof state.from === "string") {
    return state.from.startsWith("/") && !state.from.startsWith("/sign-in") ? state.from : "/";
  }
  return "/";
}

export function SignInPage() {
  usePageTitle("Sign in");
  const { session, notice, signIn } = useSession();
  const location = useLocation();
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const submission = useSubmit();

  if (session !== null) {
    return <Navigate to={destination(location.state)} replace />;
  }

  const submit = (event: SubmitEvent) => {
    event.preventDefault();
    void submission.run(() => signIn(username, password));
  };

  return (
    <main className="signin">
      <form className="card signin-card" onSubmit={submit}>
        <h1>EdgePlane</h1>
        <p className="muted">Sign in to the fleet dashboard.</p>
        {notice !== null && submission.error === null && <Notice>{notice}</Notice>}
        {submission.error !== null && <ErrorBanner error={submission.error} />}
        <label>
          User name
          <input
            name="username"
            autoComplete="username"
            required
            autoFocus
            value={username}
            onChange={(event) => {
              setUsername(event.target.value);
            }}
          />
        </label>
        <label>
          Password
          <input
            name="password"
            type="password"
            autoComplete="current-password"
            required
            value={password}
            onChange={(event) => {
              setPassword(event.target.value);
            }}
          />
        </label>
        <button type="submit" className="button-primary" disabled={submission.pending}>
          {submission.pending ? "Signing in…" : "Sign in"}
        </button>
      </form>
    </main>
  );
}
