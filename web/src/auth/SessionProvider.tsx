import { useCallback, useEffect, useMemo, useState, type ReactNode } from "react";

import { api, setBearer, setUnauthorizedHandler } from "../api/client";
import { unwrap } from "../api/errors";
import { SessionContext, type Session, type SessionState } from "./session";

// The token lives in memory and in sessionStorage: it survives a reload of the tab,
// not the tab itself, and is never shared with other tabs.
const STORAGE_KEY = "edgeplane.session";

function stored(): Session | null {
  try {
    const raw = sessionStorage.getItem(STORAGE_KEY);
    if (raw === null) {
      return null;
    }
    const session = JSON.parse(raw) as Session;
    if (Date.parse(session.expiresAt) <= Date.now()) {
      sessionStorage.removeItem(STORAGE_KEY);
      return null;
    }
    setBearer(session.token);
    return session;
  } catch {
    return null;
  }
}

function store(session: Session | null): void {
  setBearer(session?.token ?? null);
  if (session === null) {
    sessionStorage.removeItem(STORAGE_KEY);
  } else {
    sessionStorage.setItem(STORAGE_KEY, JSON.stringify(session));
  }
}

export function SessionProvider({ children }: { children: ReactNode }) {
  const [session, setSession] = useState<Session | null>(stored);
  const [notice, setNotice] = useState<string | null>(null);

  const end = useCallback((why: string | null) => {
    store(null);
    setSession(null);
    setNotice(why);
  }, []);

  useEffect(() => {
    setUnauthorizedHandler(() => {
      end("Your session has ended. Sign in again.");
    });
    return () => {
      setUnauthorizedHandler(null);
    };
  }, [end]);

  // A stored session may be stale (the role changed, or it was revoked): ask the API.
  const storedToken = session?.token;
  useEffect(() => {
    if (storedToken === undefined) {
      return;
    }
    const controller = new AbortController();
    unwrap(api.GET("/api/v1/auth/me", { signal: controller.signal })).then(
      (me) => {
        setSession((current) => {
          if (current === null || current.token !== storedToken || me.role == null) {
            return current;
          }
          const next = { ...current, username: me.name, role: me.role };
          store(next);
          return next;
        });
      },
      () => {
        // A 401 ends the session through the client's handler; other errors keep it.
      },
    );
    return () => {
      controller.abort();
    };
  }, [storedToken]);

  const signIn = useCallback(async (username: string, password: string) => {
    const answer = await unwrap(
      api.POST("/api/v1/auth/token", {
        body: { username, password, grant_type: "password" },
        bodySerializer: (body) => {
          const form = new URLSearchParams();
          for (const [key, value] of Object.entries(body)) {
            if (typeof value === "string") {
              form.set(key, value);
            }
          }
          return form;
        },
        headers: { "Content-Type": "application/x-www-form-urlencoded" },
      }),
    );
    const next: Session = {
      token: answer.access_token,
      username: answer.username,
      role: answer.role,
      expiresAt: answer.expires_at,
    };
    store(next);
    setNotice(null);
    setSession(next);
  }, []);

  const signOut = useCallback(async () => {
    try {
      await unwrap(api.POST("/api/v1/auth/logout"));
    } catch {
      // The session ends here whatever the API says; an unreachable API cannot keep it.
    }
    end("You have signed out.");
  }, [end]);

  const value = useMemo<SessionState>(
    () => ({ session, notice, signIn, signOut }),
    [session, notice, signIn, signOut],
  );
  return <SessionContext.Provider value={value}>{children}</SessionContext.Provider>;
}
