// The one module through which the dashboard talks to the server. Types come from the server's
// OpenAPI schema (schema.d.ts, generated); every state change sends the CSRF header the server
// asks of cookie clients; a 401 sends the browser to sign-in and back.
import type { components } from "./schema";

type Schemas = components["schemas"];
export type User = Schemas["UserOut"];
export type Role = User["role"];
export type Device = Schemas["DeviceOut"];
export type Heartbeat = NonNullable<Device["heartbeat"]>;
export type StatsSummary = Schemas["StatsSummary"];
export type LabelingStats = Schemas["LabelingStatsOut"];
export type Lease = Schemas["LeaseOut"];
export type LeasedTask = Schemas["LeasedTaskOut"];
export type LabelClass = Schemas["ClassOut"];
export type Prediction = Schemas["PredictionOut"];
export type LabelIn = Schemas["LabelIn"];
export type Submission = Schemas["SubmissionOut"];
export type DeviceCreated = Schemas["DeviceCreated"];
export type Job = Schemas["JobOut"];
export type JobDetail = Schemas["JobDetail"];
export type JobPage = Schemas["JobPageOut"];
export type JobStatus = Schemas["JobStatus"];
export type Frame = Schemas["FrameOut"];
export type FrameDetail = Schemas["FrameDetail"];
export type FramePage = Schemas["FramePageOut"];
export type Task = Schemas["TaskOut"];
export type DeviceDrift = Schemas["DeviceDriftOut"];
export type DriftCheck = Schemas["DriftCheckOut"];
export type DriftCheckPage = Schemas["DriftCheckPageOut"];
export type DriftFeatures = Schemas["DriftFeaturesOut"];
export type FeatureSeries = Schemas["FeatureSeriesOut"];
export type DriftReference = Schemas["DriftReferenceOut"];
export type RateSeries = Schemas["RateSeries"];
export type ModelVersion = Schemas["ModelVersionOut"];
export type RetrainingStatus = Schemas["RetrainingStatusOut"];
export type JobQueued = Schemas["JobQueued"];
export type Person = Schemas["PersonOut"];
export type PersonCreated = Schemas["PersonCreated"];
export type PasswordResetDone = Schemas["PasswordResetDone"];
export type AuditEvent = Schemas["AuditEventOut"];
export type SignOutDone = Schemas["SignOutDone"];

export type FrameFilter = {
  device_id?: string;
  class_name?: string;
  min_confidence?: string;
  max_confidence?: string;
  sampled?: string;
  cursor?: string;
};

function queryString(values: Record<string, string | undefined>): string {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(values)) if (value) query.set(key, value);
  return query.size ? `?${query.toString()}` : "";
}

export const CSRF_HEADER = "X-Visionloop-CSRF";
export const SIGN_IN_PATH = "/signin/";

/** A failed request: the HTTP status (0 = the server could not be reached), its detail and
 * the body's other fields (e.g. the running job's `job_id` of a 409 from retraining/trigger). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly detail: string,
    readonly path: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(status === 0 ? `${path}: server unreachable (${detail})` : `${path}: ${status} ${detail}`);
  }
}

/** Send the browser to sign-in, remembering where it was (not when it is already there). */
export function redirectToSignIn(): void {
  const here = window.location.pathname + window.location.search;
  if (window.location.pathname.startsWith(SIGN_IN_PATH)) return;
  window.location.assign(`${SIGN_IN_PATH}?next=${encodeURIComponent(here)}`);
}

type Method = "GET" | "POST" | "PATCH" | "DELETE";

async function request<T>(
  method: Method,
  path: string,
  body?: unknown,
  options: { redirectOn401?: boolean; keepalive?: boolean } = {},
): Promise<T | undefined> {
  const headers: Record<string, string> = { Accept: "application/json" };
  if (method !== "GET") headers[CSRF_HEADER] = "1";
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response: Response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
      keepalive: options.keepalive,
    });
  } catch (error) {
    throw new ApiError(0, error instanceof Error ? error.message : String(error), path);
  }
  if (response.status === 401 && options.redirectOn401 !== false) redirectToSignIn();
  if (!response.ok) {
    let detail = response.statusText;
    let extra: Record<string, unknown> = {};
    try {
      const data: unknown = await response.json();
      if (data && typeof data === "object" && "detail" in data) {
        const { detail: said, ...rest } = data as { detail: unknown } & Record<string, unknown>;
        detail = typeof said === "string" ? said : JSON.stringify(said);
        extra = rest;
      }
    } catch {
      // not JSON: keep the status text
    }
    throw new ApiError(response.status, detail, path, extra);
  }
  if (response.status === 204) return undefined;
  return (await response.json()) as T;
}

async function get<T>(path: string): Promise<T> {
  return (await request<T>("GET", path)) as T;
}

export const api = {
  me: async (): Promise<User> => (await request<User>("GET", "/api/v1/auth/me")) as User,
  login: async (username: string, password: string): Promise<User> =>
    (await request<User>("POST", "/api/v1/auth/login", { username, password }, { redirectOn401: false })) as User,
  logout: async (): Promise<void> => {
    await request<void>("POST", "/api/v1/auth/logout", undefined, { redirectOn401: false });
  },
  readyz: async (): Promise<{ status: string }> => {
    const response = await fetch("/readyz", { cache: "no-store" }).catch((error: unknown) => {
      throw new ApiError(0, String(error), "/readyz");
    });
    const data = (await response.json().catch(() => ({}))) as { status?: string; detail?: string };
    if (!response.ok) throw new ApiError(response.status, data.detail ?? response.statusText, "/readyz");
    return { status: data.status ?? "ready" };
  },
  devices: () => get<Device[]>("/api/v1/devices"),
  statsSummary: (window: string) =>
    get<StatsSummary>(`/api/v1/stats/summary?window=${encodeURIComponent(window)}`),
  statsRate: (window: string) => get<RateSeries>(`/api/v1/stats/rate?window=${encodeURIComponent(window)}`),
  driftStatus: () => get<DeviceDrift[]>("/api/v1/drift/status"),
  models: () => get<ModelVersion[]>("/api/v1/models"),
  /** Point `production` at a version; `force` overrides a failed gate (recorded). */
  promote: async (version: string, reason: string, force: boolean): Promise<ModelVersion> =>
    (await request<ModelVersion>("POST", `/api/v1/models/${encodeURIComponent(version)}/promote`, {
      reason,
      force,
      alias: "production",
    })) as ModelVersion,
  rollback: async (reason: string): Promise<ModelVersion> =>
    (await request<ModelVersion>("POST", "/api/v1/models/rollback", { reason, alias: "production" })) as ModelVersion,
  retrainingStatus: () => get<RetrainingStatus>("/api/v1/retraining/status"),
  /** Queue a train job; a 409 ApiError carries the queued or running job's id in `extra.job_id`. */
  retrain: async (reason: string): Promise<JobQueued> =>
    (await request<JobQueued>("POST", "/api/v1/retraining/trigger", { reason })) as JobQueued,
  labelingStats: () => get<LabelingStats>("/api/v1/labeling/stats"),
  addDevice: async (name: string): Promise<DeviceCreated> =>
    (await request<DeviceCreated>("POST", "/api/v1/devices", { name })) as DeviceCreated,
  rotateDevice: async (id: number): Promise<DeviceCreated> =>
    (await request<DeviceCreated>("POST", `/api/v1/devices/${id}/rotate`)) as DeviceCreated,
  setDeviceEnabled: async (id: number, enabled: boolean): Promise<Device> =>
    (await request<Device>("POST", `/api/v1/devices/${id}/${enabled ? "enable" : "disable"}`)) as Device,
  jobs: (filter: { status?: string; kind?: string; cursor?: string }) => get<JobPage>(`/api/v1/jobs${queryString(filter)}`),
  frames: (filter: FrameFilter) => get<FramePage>(`/api/v1/frames${queryString(filter)}`),
  frame: (id: string) => get<FrameDetail>(`/api/v1/frames/${encodeURIComponent(id)}`),
  classes: () => get<LabelClass[]>("/api/v1/classes"),
  /** Send a frame to review; `created` is false when it already had an open task. */
  sendToReview: async (frameId: string, note: string | null): Promise<Task> =>
    (await request<Task>("POST", "/api/v1/labeling/tasks", { frame_id: frameId, note })) as Task,
  job: (id: number) => get<JobDetail>(`/api/v1/jobs/${id}`),
  cancelJob: async (id: number): Promise<JobDetail> =>
    (await request<JobDetail>("POST", `/api/v1/jobs/${id}/cancel`)) as JobDetail,
  /** The next task to label, leased to this reviewer; null when the queue is empty. */
  leaseNext: async (): Promise<Lease | null> =>
    (await request<Lease>("POST", "/api/v1/labeling/next")) ?? null,
  submit: async (taskId: number, labels: LabelIn[]): Promise<Submission> =>
    (await request<Submission>("POST", `/api/v1/labeling/tasks/${taskId}/submit`, { labels })) as Submission,
  skip: async (taskId: number, reason: string): Promise<void> => {
    await request<void>("POST", `/api/v1/labeling/tasks/${taskId}/skip`, { reason });
  },
  driftChecks: (deviceId: number, cursor?: string) =>
    get<DriftCheckPage>(`/api/v1/drift/checks${queryString({ device_id: String(deviceId), limit: "20", cursor })}`),
  driftFeatures: (deviceId: number, window: string) =>
    get<DriftFeatures>(`/api/v1/drift/features${queryString({ device_id: String(deviceId), window })}`),
  driftReportUrl: (checkId: number) => `/api/v1/drift/checks/${checkId}/report`,
  /** "Accept the new normal": the device's frames captured in [since, until) become its reference. */
  pinReference: async (deviceId: number, since: string, until: string): Promise<DriftReference> =>
    (await request<DriftReference>("POST", "/api/v1/drift/reference", { device_id: deviceId, since, until })) as DriftReference,
  unpinReference: async (deviceId: number): Promise<void> => {
    await request<void>("DELETE", `/api/v1/drift/reference/${deviceId}`);
  },
  queueDriftCheck: async (deviceId: number): Promise<{ job_id: number }> =>
    (await request<{ job_id: number }>("POST", "/api/v1/drift/checks", { device_id: deviceId })) as { job_id: number },
  /** Change one's own password (also when an admin reset it); other sessions end. */
  changePassword: async (currentPassword: string, newPassword: string): Promise<void> => {
    await request<void>("POST", "/api/v1/auth/password", {
      current_password: currentPassword,
      new_password: newPassword,
    });
  },
  signOutEverywhere: async (): Promise<SignOutDone> =>
    (await request<SignOutDone>("POST", "/api/v1/auth/sign-out-everywhere")) as SignOutDone,
  users: (deleted: boolean) => get<Person[]>(`/api/v1/users${deleted ? "?deleted=true" : ""}`),
  /** Add a person; without a password the answer holds a generated one, shown once. */
  addUser: async (name: string, role: Role): Promise<PersonCreated> =>
    (await request<PersonCreated>("POST", "/api/v1/users", { name, role })) as PersonCreated,
  setUserRole: async (id: number, role: Role): Promise<Person> =>
    (await request<Person>("PATCH", `/api/v1/users/${id}`, { role })) as Person,
  setUserEnabled: async (id: number, enabled: boolean): Promise<Person> =>
    (await request<Person>("POST", `/api/v1/users/${id}/${enabled ? "enable" : "disable"}`)) as Person,
  resetPassword: async (id: number): Promise<PasswordResetDone> =>
    (await request<PasswordResetDone>("POST", `/api/v1/users/${id}/password`, {})) as PasswordResetDone,
  signOutUser: async (id: number): Promise<SignOutDone> =>
    (await request<SignOutDone>("POST", `/api/v1/users/${id}/sign-out`)) as SignOutDone,
  deleteUser: async (id: number): Promise<void> => {
    await request<void>("DELETE", `/api/v1/users/${id}`);
  },
  audit: () => get<AuditEvent[]>("/api/v1/users/audit?limit=50"),
  /** Give a task back; `keepalive` lets it finish while the page unloads. */
  release: async (taskId: number, keepalive = false): Promise<void> => {
    await request<void>("POST", `/api/v1/labeling/tasks/${taskId}/release`, undefined, { keepalive });
  },
};

/** Role order: each role may do what the ones before it may. */
const RANK: Record<Role, number> = { viewer: 0, reviewer: 1, admin: 2 };

export function mayAct(user: User | undefined, needs: Role): boolean {
  return user !== undefined && RANK[user.role] >= RANK[needs];
}
