"use client";
import type { ReactNode } from "react";
import type { Device } from "@/api/client";
import { count, fixed } from "@/lib/format";
import { Empty, SkeletonRows } from "./States";
import { RelativeTime, useNow } from "./Time";

/** A device is online when it was heard from this recently (its heartbeat comes every 5 s). */
export const ONLINE_WITHIN_S = 30;

export type DeviceState = "online" | "offline" | "disabled" | "never seen";

export function deviceState(device: Device, now: number): DeviceState {
  if (device.disabled) return "disabled";
  if (!device.last_seen_at) return "never seen";
  return now - Date.parse(device.last_seen_at) <= ONLINE_WITHIN_S * 1000 ? "online" : "offline";
}

const STATE_CLASS: Record<DeviceState, string> = {
  online: "state-ok",
  offline: "state-alarm",
  disabled: "state-warn",
  "never seen": "state-muted",
};
const STATE_ICON: Record<DeviceState, string> = { online: "●", offline: "✕", disabled: "⏸", "never seen": "○" };

export function StateBadge({ state }: { state: DeviceState }) {
  return (
    <span className={`state ${STATE_CLASS[state]}`}>
      <span aria-hidden="true">{STATE_ICON[state]}</span> {state}
    </span>
  );
}

function latencies(latency: Record<string, number> | undefined): string {
  const entries = Object.entries(latency ?? {});
  return entries.length ? entries.map(([stage, ms]) => `${stage} ${ms.toFixed(0)} ms`).join(" · ") : "–";
}

function offset(seconds: number | null): string {
  if (seconds === null) return "–";
  return `${seconds >= 0 ? "+" : ""}${seconds.toFixed(seconds !== 0 && Math.abs(seconds) < 10 ? 2 : 0)} s`;
}

/** Every device with its latest heartbeat; `devices` undefined = still loading. */
export function DeviceTable({ devices, actions }: { devices: Device[] | undefined; actions?: (device: Device) => ReactNode }) {
  const now = useNow(5000);
  return (
    <div className="table-wrap">
      <table className="data" aria-label="Devices">
        <thead>
          <tr>
            <th scope="col">Device</th>
            <th scope="col">State</th>
            <th scope="col" className="num">FPS</th>
            <th scope="col">Median latency per stage</th>
            <th scope="col" className="num">Outbox backlog</th>
            <th scope="col" className="num">Dropped frames</th>
            <th scope="col" className="num">Dead letters</th>
            <th scope="col" className="num" title="Server time minus the device's clock">Clock offset</th>
            <th scope="col">Model</th>
            <th scope="col">Last seen</th>
            {actions && <th scope="col">Actions</th>}
          </tr>
        </thead>
        <tbody>
          {devices === undefined
            ? <SkeletonRows rows={2} cols={actions ? 11 : 10} />
            : devices.map((d) => {
                const hb = d.heartbeat;
                return (
                  <tr key={d.id} data-testid={`device-${d.name}`}>
                    <th scope="row">{d.name}</th>
                    <td>
                      <StateBadge state={deviceState(d, now)} />
                    </td>
                    <td className="num">{hb ? fixed(hb.fps, 1, "FPS") : "–"}</td>
                    <td className="small">{latencies(hb?.latency_ms)}</td>
                    <td className="num">{hb ? count(hb.outbox_backlog ?? 0) : "–"}</td>
                    <td className="num">{hb ? count(hb.dropped_frames ?? 0) : "–"}</td>
                    <td className={`num ${(hb?.dead_letters ?? 0) > 0 ? "state-warn" : ""}`}>
                      {hb ? count(hb.dead_letters ?? 0) : "–"}
                    </td>
                    <td className="num">{offset(d.clock_offset_s)}</td>
                    <td>
                      {d.model_version ?? "–"}
                      {hb?.model_error && (
                        <span className="state state-alarm" title={hb.model_error}>
                          {" "}
                          ⚠ model error
                        </span>
                      )}
                    </td>
                    <td>
                      <RelativeTime iso={d.last_seen_at} />
                    </td>
                    {actions && <td className="row-actions">{actions(d)}</td>}
                  </tr>
                );
              })}
        </tbody>
      </table>
      {devices !== undefined && devices.length === 0 && (
        <Empty>No devices yet. An admin adds one with <code>visionloop devices add NAME</code>.</Empty>
      )}
    </div>
  );
}
