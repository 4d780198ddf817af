/**
 * The dashboard's pages. A new page (anomalies, models, rollouts, ...) is one entry
 * here: its path, its menu label if it has one, the least role that may open it, and
 * the module that renders it (loaded when first opened, so the first page stays small).
 */
import { lazy, type ComponentType, type LazyExoticComponent } from "react";

import type { Role } from "./api/client";

export interface PageDef {
  path: string;
  /** The label in the menu; pages without one are reached by links (a device's page). */
  nav?: string;
  role: Role;
  component: LazyExoticComponent<ComponentType>;
}

export const PAGES: PageDef[] = [
  {
    path: "/",
    nav: "Overview",
    role: "viewer",
    component: lazy(() => import("./pages/OverviewPage")),
  },
  {
    path: "/devices",
    nav: "Devices",
    role: "viewer",
    component: lazy(() => import("./pages/DevicesPage")),
  },
  {
    path: "/devices/:deviceId",
    role: "viewer",
    component: lazy(() => import("./pages/DevicePage")),
  },
  {
    path: "/clusters",
    nav: "Clusters",
    role: "viewer",
    component: lazy(() => import("./pages/ClustersPage")),
  },
  {
    path: "/anomalies",
    nav: "Anomalies",
    role: "viewer",
    component: lazy(() => import("./pages/AnomaliesPage")),
  },
  {
    path: "/models",
    nav: "Models",
    role: "viewer",
    component: lazy(() => import("./pages/ModelsPage")),
  },
  {
    path: "/training",
    nav: "Retraining",
    role: "viewer",
    component: lazy(() => import("./pages/TrainingPage")),
  },
  {
    path: "/rollouts",
    nav: "Rollouts",
    role: "viewer",
    component: lazy(() => import("./pages/RolloutsPage")),
  },
  {
    path: "/rollouts/new",
    role: "operator",
    component: lazy(() => import("./pages/RolloutStartPage")),
  },
  {
    path: "/rollouts/:rolloutId",
    role: "viewer",
    component: lazy(() => import("./pages/RolloutPage")),
  },
  {
    path: "/enrollment-tokens",
    nav: "Enrollment tokens",
    role: "operator",
    component: lazy(() => import("./pages/EnrollmentTokensPage")),
  },
];
