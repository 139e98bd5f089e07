// Number, duration and time formatting shared by the pages (units always shown).

const grouped = new Intl.NumberFormat("en-US");

/** 1204331 -> "1,204,331". */
export function count(n: number): string {
  return grouped.format(n);
}

/** A fixed-precision number with its unit: fixed(38.23, 1, "FPS") -> "38.2 FPS". */
export function fixed(n: number | null | undefined, digits: number, unit = ""): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return "–";
  return unit ? `${n.toFixed(digits)} ${unit}` : n.toFixed(digits);
}

/** 0.913 -> "91.3 %". */
export function percent(n: number | null | undefined, digits = 1): string {
  return n === null || n === undefined ? "–" : `${(n * 100).toFixed(digits)} %`;
}

/** Seconds as "12 s", "3 min", "2 h", "4 d". */
export function duration(seconds: number): string {
  const s = Math.abs(seconds);
  if (s < 90) return `${Math.round(s)} s`;
  if (s < 90 * 60) return `${Math.round(s / 60)} min`;
  if (s < 36 * 3600) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} d`;
}

/** "3 min ago" (or "in 3 min") relative to `now`. */
export function relative(iso: string, now: number = Date.now()): string {
  const seconds = (now - Date.parse(iso)) / 1000;
  if (Math.abs(seconds) < 5) return "just now";
  return seconds >= 0 ? `${duration(seconds)} ago` : `in ${duration(seconds)}`;
}

/** The absolute UTC time shown on hover: "2026-11-29 23:05:28 UTC". */
export function utc(iso: string | number): string {
  const d = new Date(iso);
  return `${d.toISOString().slice(0, 19).replace("T", " ")} UTC`;
}
