import { createContext, useContext } from "react";

import type { Role } from "../api/client";
import { roleAllows } from "./roles";

export interface Session {
  token: string;
  username: string;
  role: Role;
  expiresAt: string;
}

export interface SessionState {
  session: Session | null;
  /** Why the last session ended, shown on the sign-in page. */
  notice: string | null;
  signIn: (username: string, password: string) => Promise<void>;
  signOut: () => Promise<void>;
}

export const SessionContext = createContext<SessionState | null>(null);

export function useSession(): SessionState {
  const state = useContext(SessionContext);
  if (state === null) {
    throw new Error("useSession needs a <SessionProvider>");
  }
  return state;
}

/** Whether the signed-in user has at least this role. */
export function useCan(required: Role): boolean {
  return roleAllows(useSession().session?.role, required);
}
