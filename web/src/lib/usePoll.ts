import { useEffect } from "react";

/** Call `refresh` every `ms` while `active` and the tab is visible (live pages). */
export function usePoll(refresh: () => void, ms: number, active = true): void {
  useEffect(() => {
    if (!active) {
      return;
    }
    const timer = window.setInterval(() => {
      if (document.visibilityState === "visible") {
        refresh();
      }
    }, ms);
    return () => {
      window.clearInterval(timer);
    };
  }, [refresh, ms, active]);
}
