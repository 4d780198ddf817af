import type { Role } from "../api/client";

const RANK: Record<Role, number> = { viewer: 10, operator: 20, admin: 30 };

/** Mirrors server/common/actor.py: a role allows everything a lower role may do. */
export function roleAllows(role: Role | null | undefined, required: Role): boolean {
  return role != null && RANK[role] >= RANK[required];
}
