"use client";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { useState, type ReactNode } from "react";
import { ApiError } from "@/api/client";

export function Providers({ children }: { children: ReactNode }) {
  const [client] = useState(
    () =>
      new QueryClient({
        defaultOptions: {
          queries: {
            // Polling pauses while the tab is hidden (refetchIntervalInBackground: false).
            refetchIntervalInBackground: false,
            refetchOnWindowFocus: true,
            retry: (failures, error) =>
              !(error instanceof ApiError && [401, 403, 404].includes(error.status)) && failures < 2,
          },
        },
      }),
  );
  return <QueryClientProvider client={client}>{children}</QueryClientProvider>;
}
