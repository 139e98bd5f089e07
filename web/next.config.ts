import type { NextConfig } from "next";
import { PHASE_DEVELOPMENT_SERVER } from "next/constants";

// The API that `next dev` forwards /api, /readyz and /healthz to (make web-dev). Not a
// VISIONLOOP_* name: the server refuses settings it does not know.
const devApi = process.env.WEB_DEV_API ?? "http://127.0.0.1:8000";

export default function config(phase: string): NextConfig {
  const base: NextConfig = {
    reactStrictMode: true,
    poweredByHeader: false,
    // /review -> /review/index.html: the FastAPI fallback serves a page folder's index.html.
    trailingSlash: true,
    images: { unoptimized: true },
  };
  if (phase === PHASE_DEVELOPMENT_SERVER) {
    return {
      ...base,
      // API paths keep their own slashes; the dev server must not redirect them.
      skipTrailingSlashRedirect: true,
      async rewrites() {
        return ["/api/:path*", "/readyz", "/healthz"].map((source) => ({
          source,
          destination: `${devApi}${source}`,
        }));
      },
    };
  }
  // `next build` writes a static export to out/; make web copies it into the Python package.
  return { ...base, output: "export" };
}
