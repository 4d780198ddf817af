import type { ReactNode } from "react";

import type { Role } from "../api/client";
import { useCan } from "../auth/session";

/**
 * Renders its children only for users with at least `role`. Every control that changes
 * something sits inside one of these, so a viewer never sees it.
 */
export function RequireRole({ role, children }: { role: Role; children: ReactNode }) {
  return useCan(role) ? <>{children}</> : null;
}
