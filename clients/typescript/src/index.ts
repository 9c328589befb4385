// @practice-hub/client: the Practice Hub API from TypeScript or JavaScript.

import { type ClientOptions, Transport } from "./client.js";
import { Resources } from "./resources.js";
import type { components } from "./schema.js";

export * from "./client.js";
export * from "./webhooks.js";
export * from "./resources.js";
export type { components, paths, operations } from "./schema.js";

/** Every schema of the API by name: `Schemas["Patient"]`, `Schemas["PatientCreate"]`… */
export type Schemas = components["schemas"];

/**
 * The client: `new PracticeHub({ apiKey, baseUrl })`, then a property per
 * resource (`hub.patients`, `hub.appointmentTypes`, `hub.webhookEndpoints`…)
 * with `create`, `retrieve`, `update`, `del`, `list` and its actions.
 */
export class PracticeHub extends Resources {
  readonly transport: Transport;

  constructor(options: ClientOptions) {
    const transport = new Transport(options);
    super(transport);
    this.transport = transport;
  }

  /** The organization of the key (secret or restricted keys). */
  async organization(): Promise<Schemas["Organization"]> {
    return (await this.transport.request<Schemas["Organization"]>("GET", "/v1/organization")).body;
  }
}

export default PracticeHub;
