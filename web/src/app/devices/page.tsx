"use client";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { api, mayAct, type Device, type DeviceCreated } from "@/api/client";
import { Confirm } from "@/components/Confirm";
import { SecretOnce } from "@/components/SecretOnce";
import { DeviceTable } from "@/components/DeviceTable";
import { useUser } from "@/components/Session";
import { ErrorNote, Source } from "@/components/States";

const EVERY_S = 5;

type Pending = { device: Device; action: "rotate" | "disable" | "enable" };

const CONFIRM_TEXT: Record<Pending["action"], string> = {
  rotate: "Its current token stops working at once (401); the agent needs the new token, shown once.",
  disable: "Its tokens get 403 from now on: the agent stops syncing until the device is enabled again.",
  enable: "Its live token works again.",
};

/** A token shown once, with a copy button. */
function TokenOnce({ created, onDone }: { created: DeviceCreated; onDone: () => void }) {
  return (
    <SecretOnce secret={created.token} testId="token" onDone={onDone}>
      Token of <strong>{created.device.name}</strong>, shown once: store it now (<code>visionloop edge --token …</code>).
    </SecretOnce>
  );
}

export default function DevicesPage() {
  const user = useUser();
  const admin = mayAct(user, "admin");
  const queryClient = useQueryClient();
  const devices = useQuery({ queryKey: ["devices"], queryFn: api.devices, refetchInterval: EVERY_S * 1000 });
  const [created, setCreated] = useState<DeviceCreated | null>(null);
  const [pending, setPending] = useState<Pending | null>(null);
  const [result, setResult] = useState<string | null>(null);

  const add = useMutation({
    mutationFn: api.addDevice,
    onSuccess: (answer) => {
      setCreated(answer);
      setResult(null);
      void queryClient.invalidateQueries({ queryKey: ["devices"] });
    },
  });
  const act = useMutation({
    mutationFn: async ({ device, action }: Pending) => {
      if (action === "rotate") setCreated(await api.rotateDevice(device.id));
      else await api.setDeviceEnabled(device.id, action === "enable");
      return { device, action };
    },
    onSuccess: ({ device, action }) => {
      setResult(`${device.name}: ${action === "rotate" ? "token rotated" : `${action}d`}.`);
      void queryClient.invalidateQueries({ queryKey: ["devices"] });
    },
  });

  function onAdd(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const form = event.currentTarget;
    const name = String(new FormData(form).get("name") ?? "").trim();
    if (name) add.mutate(name, { onSuccess: () => form.reset() });
  }

  return (
    <>
      <div className="page-head">
        <h1>Devices</h1>
      </div>
      <Source paths={["/api/v1/devices"]} updatedAt={devices.dataUpdatedAt} everyS={EVERY_S} />
      {devices.isError && <ErrorNote what="Loading devices" error={devices.error} />}
      {admin && (
        <form className="inline-form" onSubmit={onAdd} aria-label="Add a device">
          <label>
            New device name <input name="name" required maxLength={128} placeholder="line1-cam2" />
          </label>
          <button type="submit" className="primary" disabled={add.isPending}>
            Add device
          </button>
        </form>
      )}
      {add.isError && <ErrorNote what="Adding the device" error={add.error} />}
      {act.isError && <ErrorNote what="Changing the device" error={act.error} />}
      {created && <TokenOnce created={created} onDone={() => setCreated(null)} />}
      {result && (
        <p className="note" role="status">
          ✓ {result}
        </p>
      )}
      <DeviceTable
        devices={devices.data}
        actions={
          admin
            ? (d) => (
                <>
                  <button type="button" onClick={() => setPending({ device: d, action: "rotate" })}>
                    Rotate token
                  </button>
                  <button type="button" onClick={() => setPending({ device: d, action: d.disabled ? "enable" : "disable" })}>
                    {d.disabled ? "Enable" : "Disable"}
                  </button>
                </>
              )
            : undefined
        }
      />
      {!admin && user && <p className="muted small">Admins add devices, rotate their tokens, and disable or enable them.</p>}
      {pending && (
        <Confirm
          title={`${pending.action === "rotate" ? "Rotate the token of" : pending.action === "disable" ? "Disable" : "Enable"} ${pending.device.name}?`}
          confirmLabel={pending.action === "rotate" ? "Rotate token" : pending.action === "disable" ? "Disable" : "Enable"}
          onCancel={() => setPending(null)}
          onConfirm={() => {
            act.mutate(pending);
            setPending(null);
          }}
        >
          <p>{CONFIRM_TEXT[pending.action]}</p>
        </Confirm>
      )}
    </>
  );
}
