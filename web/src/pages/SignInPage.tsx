import { useState, type SubmitEvent } from "react";
import { Navigate, useLocation } from "react-router";

import { asApiError, type ApiError } from "../api/errors";
import { useSession } from "../auth/session";
import { ErrorBanner, Notice } from "../components/Feedback";
import { usePageTitle } from "../lib/usePageTitle";

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
  const [pending, setPending] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);

  if (session !== null) {
    return <Navigate to={destination(location.state)} replace />;
  }

  const submit = async (event: SubmitEvent) => {
    event.preventDefault();
    setPending(true);
    setError(null);
    try {
      await signIn(username, password);
    } catch (caught) {
      setError(asApiError(caught));
      setPending(false);
    }
  };

  return (
    <main className="signin">
      <form className="card signin-card" onSubmit={(event) => void submit(event)}>
        <h1>EdgePlane</h1>
        <p className="muted">Sign in to the fleet dashboard.</p>
        {notice !== null && error === null && <Notice>{notice}</Notice>}
        {error !== null && <ErrorBanner error={error} />}
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
        <button type="submit" className="button-primary" disabled={pending}>
          {pending ? "Signing in…" : "Sign in"}
        </button>
      </form>
    </main>
  );
}
