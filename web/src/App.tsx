import type { ReactNode } from "react";
import { BrowserRouter, Navigate, Route, Routes, useLocation } from "react-router";

import { roleAllows } from "./auth/roles";
import { useSession } from "./auth/session";
import { SessionProvider } from "./auth/SessionProvider";
import { Layout } from "./components/Layout";
import { NotFoundPage, RoleRequiredPage } from "./pages/NotFoundPage";
import { SignInPage } from "./pages/SignInPage";
import { PAGES, type PageDef } from "./routes";

function RequireSession({ children }: { children: ReactNode }) {
  const { session } = useSession();
  const location = useLocation();
  if (session === null) {
    return <Navigate to="/sign-in" replace state={{ from: location.pathname + location.search }} />;
  }
  return <>{children}</>;
}

function Page({ page }: { page: PageDef }) {
  const { session } = useSession();
  if (!roleAllows(session?.role, page.role)) {
    return <RoleRequiredPage role={page.role} />;
  }
  const Component = page.component;
  return <Component />;
}

export function App() {
  return (
    <BrowserRouter>
      <SessionProvider>
        <Routes>
          <Route path="/sign-in" element={<SignInPage />} />
          <Route
            element={
              <RequireSession>
                <Layout />
              </RequireSession>
            }
          >
            {PAGES.map((page) => (
              <Route key={page.path} path={page.path} element={<Page page={page} />} />
            ))}
            <Route path="*" element={<NotFoundPage />} />
          </Route>
        </Routes>
      </SessionProvider>
    </BrowserRouter>
  );
}
