// Compiled (not run) by `npm test`: the generated types accept what the API
// accepts and refuse what it refuses.
import { PracticeHub, PracticeHubError, verifyWebhook, type Schemas } from "../../src/index.js";

export async function usage(hub: PracticeHub) {
  const p = await hub.patients.create({
    fullName: "Ada",
    primaryPhoneNumber: "+447700900123",
    primaryClinicName: "London",
    statusName: "patient created",
    referralName: "google",
    tracking: {},
  });
  const id: string = p.id;
  await hub.patients.update(id, { notes: null }, { ifMatch: p.version });
  for await (const q of hub.patients.list({ fullName: { $in: ["Ada"] }, $sort: { fullName: 1 }, "address.city": "Leeds" })) {
    const name: string = q.fullName;
    void name;
  }
  const pkg: Schemas["PackageCreate"] = { name: "Gold", type: "membership", price: 100, currency: "GBP", durationDays: 30 };
  await hub.packages.create(pkg, { idempotencyKey: "k1" });
  await hub.appointmentTypes.create({ name: "Test", durationMinutes: 30, price: 0, currency: "GBP" });
  const rolled = await hub.webhookEndpoints.rollSecret("we_1", { overlapHours: 1 });
  void rolled;
  for await (const slot of hub.availability.list({ appointmentTypeId: "aty_1", from: "2030-01-01T00:00:00Z", to: "2030-01-02T00:00:00Z" })) {
    void slot.startAt;
  }
  // @ts-expect-error: durationMinutes is required
  await hub.appointmentTypes.create({ name: "No length", price: 0, currency: "GBP" });
  // @ts-expect-error: an unknown field
  await hub.clinics.update("cli_1", { nmae: "typo" });
  try {
    verifyWebhook("{}", new Headers(), "whsec_x", { toleranceSeconds: 60 });
  } catch (e) {
    if (e instanceof PracticeHubError) void [e.status, e.type, e.eventId, e.errors];
  }
}
