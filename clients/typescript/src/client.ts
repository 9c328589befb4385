// The HTTP core of the client: authentication, JSON bodies, errors as
// PracticeHubError, an Idempotency-Key on every POST (kept across its
// retries), retries of 429 and 503 after Retry-After, and list pages as an
// async iterable.

/** Options of `new PracticeHub(…)`. */
export interface ClientOptions {
  /** A secret (`sk_…`), restricted (`rk_…`) or publishable (`pk_…`) key. */
  apiKey: string;
  /** Where the hub is, e.g. `http://127.0.0.1:8080` (no `/v1`). */
  baseUrl: string;
  /** How many times a 429 or 503 is retried (default 3). */
  maxRetries?: number;
  /** The longest wait before a retry, in seconds (default 60). */
  maxRetryDelaySeconds?: number;
  /** A fetch of your own (tests, proxies); default `globalThis.fetch`. */
  fetch?: typeof fetch;
}

/** One invalid input of a 400. */
export interface FieldError {
  field: string;
  message: string;
}

/** Every error response of the API, thrown by every method. */
export class PracticeHubError extends Error {
  /** The HTTP status (0 when the hub could not be reached). */
  readonly status: number;
  /** The envelope's `name`: `INVALID_PARAMETERS`, `NOT_FOUND`, `CONFLICT`… */
  readonly type: string;
  /** The request's id: quote it to support (it is in the request's log line). */
  readonly eventId: string | undefined;
  /** Each invalid input (400). */
  readonly errors: FieldError[];
  /** The response headers (`Retry-After`, `ETag`…), when there was a response. */
  readonly headers: Headers | undefined;

  constructor(
    status: number,
    type: string,
    message: string,
    eventId?: string,
    errors: FieldError[] = [],
    headers?: Headers,
  ) {
    super(message);
    this.name = "PracticeHubError";
    this.status = status;
    this.type = type;
    this.eventId = eventId;
    this.errors = errors;
    this.headers = headers;
  }
}

/** Options of a POST. */
export interface PostOptions {
  /** Sent as `Idempotency-Key`; one is generated when not given. */
  idempotencyKey?: string;
}

/** Options of an update or delete. */
export interface WriteOptions {
  /** Sent as `If-Match` (an ETag such as `"3"`, or the version number). */
  ifMatch?: string | number;
}

/** A list query: equality filters, Feathers operators, `$sort`, `$select`… */
export type ListQuery = Record<string, unknown>;

/** The operators a filtered field takes. */
export interface Operators<V> {
  $in?: V[];
  $nin?: V[];
  $lt?: V;
  $lte?: V;
  $gt?: V;
  $gte?: V;
  $ne?: V | null;
  $exists?: boolean;
}

/**
 * A typed list query: each documented filter as a value or operators, plus
 * anything else the query language takes (dotted paths, `$or`, `$and`).
 */
export type Filter<Q> = { [K in keyof Q]?: Q[K] | Operators<NonNullable<Q[K]>> } & {
  $sort?: Record<string, 1 | -1>;
  $select?: string[];
  $or?: ListQuery[];
  $and?: ListQuery[];
} & ListQuery;

/** A page of a list. */
export interface Page<T> {
  object: "list";
  data: T[];
  total?: number;
  skip?: number;
  limit?: number;
  next?: string | null;
  prev?: string | null;
}

interface RequestOptions {
  query?: ListQuery;
  body?: unknown;
  idempotencyKey?: string;
  ifMatch?: string | number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Encode a query the way the hub parses it: nested objects as `a[b]=v`
 * (`dob[$gte]=1980-01-01`, `$sort[fullName]=1`), arrays of values as a
 * repeated key (`status[$in]=a&status[$in]=b`), arrays of objects with
 * indices (`$or[0][city]=Leeds`).
 */
export function encodeQuery(query: ListQuery | undefined): string {
  const parts: string[] = [];
  const add = (key: string, value: unknown) => {
    if (value === undefined) return;
    if (value === null) {
      parts.push(`${enc(key)}=`);
    } else if (Array.isArray(value)) {
      value.forEach((item, i) => {
        if (item !== null && typeof item === "object") add(`${key}[${i}]`, item);
        else add(key, item);
      });
    } else if (value instanceof Date) {
      parts.push(`${enc(key)}=${enc(value.toISOString())}`);
    } else if (typeof value === "object") {
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) add(`${key}[${k}]`, v);
    } else {
      parts.push(`${enc(key)}=${enc(String(value))}`);
    }
  };
  for (const [k, v] of Object.entries(query ?? {})) add(k, v);
  return parts.join("&");
}

// Brackets and `$` stay readable: the hub decodes percent-escapes either way.
const enc = (s: string) =>
  encodeURIComponent(s).replace(/%5B/gi, "[").replace(/%5D/gi, "]").replace(/%24/g, "$");

function retryDelayMs(headers: Headers, attempt: number, maxSeconds: number): number {
  const raw = headers.get("retry-after");
  let seconds = Number.NaN;
  if (raw !== null) {
    seconds = /^\d+$/.test(raw.trim()) ? Number(raw) : (Date.parse(raw) - Date.now()) / 1000;
  }
  if (!Number.isFinite(seconds) || seconds < 0) seconds = Math.min(2 ** attempt * 0.5, 8);
  return Math.min(seconds, maxSeconds) * 1000;
}

/** The transport every resource uses. */
export class Transport {
  readonly apiKey: string;
  readonly baseUrl: string;
  readonly maxRetries: number;
  readonly maxRetryDelaySeconds: number;
  private readonly fetchFn: typeof fetch;

  constructor(options: ClientOptions) {
    if (!options || typeof options.apiKey !== "string" || options.apiKey === "") {
      throw new TypeError("PracticeHub: `apiKey` is required");
    }
    if (typeof options.baseUrl !== "string" || options.baseUrl === "") {
      throw new TypeError("PracticeHub: `baseUrl` is required, e.g. http://127.0.0.1:8080");
    }
    this.apiKey = options.apiKey;
    this.baseUrl = options.baseUrl.replace(/\/+$/, "").replace(/\/v1$/, "");
    this.maxRetries = options.maxRetries ?? 3;
    this.maxRetryDelaySeconds = options.maxRetryDelaySeconds ?? 60;
    this.fetchFn = options.fetch ?? globalThis.fetch.bind(globalThis);
  }

  /** Send a request; answer the parsed body and the response headers. */
  async request<T>(method: string, path: string, opts: RequestOptions = {}): Promise<{ body: T; headers: Headers; status: number }> {
    const qs = encodeQuery(opts.query);
    const url = `${this.baseUrl}${path}${qs ? `?${qs}` : ""}`;
    const headers: Record<string, string> = {
      Authorization: `Bearer ${this.apiKey}`,
      Accept: "application/json",
    };
    if (method === "POST") {
      // One key for this call and all its retries: a retry after a lost
      // response is answered with the first response, never a second write.
      headers["Idempotency-Key"] = opts.idempotencyKey ?? globalThis.crypto.randomUUID();
    }
    if (opts.ifMatch !== undefined) {
      const v = String(opts.ifMatch);
      headers["If-Match"] = v.startsWith('"') || v.startsWith("W/") ? v : `"${v}"`;
    }
    let body: string | undefined;
    if (opts.body !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(opts.body);
    }
    for (let attempt = 0; ; attempt++) {
      let res: Response;
      try {
        res = await this.fetchFn(url, { method, headers, body });
      } catch (e) {
        throw new PracticeHubError(0, "CONNECTION_ERROR", `Could not reach ${this.baseUrl}: ${(e as Error).message}`);
      }
      if ((res.status === 429 || res.status === 503) && attempt < this.maxRetries) {
        await res.arrayBuffer().catch(() => undefined);
        await sleep(retryDelayMs(res.headers, attempt, this.maxRetryDelaySeconds));
        continue;
      }
      const text = await res.text();
      let parsed: unknown = undefined;
      if (text !== "") {
        try {
          parsed = JSON.parse(text);
        } catch {
          parsed = undefined;
        }
      }
      if (!res.ok) {
        const env = (parsed ?? {}) as { name?: string; message?: string; eventId?: string; errors?: FieldError[] };
        throw new PracticeHubError(
          res.status,
          env.name ?? `HTTP_${res.status}`,
          env.message ?? (text.slice(0, 200) || res.statusText),
          env.eventId ?? res.headers.get("request-id") ?? undefined,
          Array.isArray(env.errors) ? env.errors : [],
          res.headers,
        );
      }
      return { body: parsed as T, headers: res.headers, status: res.status };
    }
  }

  /** Every item of a list, page after page (`next` cursors). */
  list<T>(path: string, query: ListQuery = {}): AsyncIterable<T> & { firstPage(): Promise<Page<T>> } {
    const self = this;
    return {
      firstPage: async () => (await self.request<Page<T>>("GET", path, { query })).body,
      async *[Symbol.asyncIterator]() {
        let q: ListQuery = { ...query };
        for (;;) {
          const { body } = await self.request<Page<T>>("GET", path, { query: q });
          for (const item of body.data ?? []) yield item;
          if (!body.next || (body.data ?? []).length === 0) return;
          q = { ...query, $after: body.next };
          delete q.$skip;
        }
      },
    };
  }
}

const seg = (id: string) => {
  if (typeof id !== "string" || id === "") throw new TypeError("an id is required");
  return encodeURIComponent(id);
};

/** A read-only list that is not a resource's (availability). */
export class View<T, Q extends ListQuery = ListQuery> {
  constructor(
    protected readonly transport: Transport,
    readonly path: string,
  ) {}

  /** Every item the query answers (`for await`). */
  list(query?: Filter<Q>): AsyncIterable<T> & { firstPage(): Promise<Page<T>> } {
    return this.transport.list<T>(this.path, query ?? {});
  }
}

/** List and retrieve: every resource has these. */
export class ReadResource<T, Q extends ListQuery = ListQuery> {
  constructor(
    protected readonly transport: Transport,
    readonly path: string,
  ) {}

  /** One object by id (`$select` optional). */
  async retrieve(id: string, query?: { $select?: string[] }): Promise<T> {
    return (await this.transport.request<T>("GET", `${this.path}/${seg(id)}`, { query })).body;
  }

  /** Every object matching the query, across all pages (`for await`). */
  list(query?: Filter<Q>): AsyncIterable<T> & { firstPage(): Promise<Page<T>> } {
    return this.transport.list<T>(this.path, query ?? {});
  }

  protected async postAction<R>(id: string, name: string, body: unknown, opts?: PostOptions): Promise<R> {
    return (
      await this.transport.request<R>("POST", `${this.path}/${seg(id)}/${name}`, {
        body: body ?? {},
        idempotencyKey: opts?.idempotencyKey,
      })
    ).body;
  }

  protected subList<R>(id: string, name: string, query?: ListQuery): AsyncIterable<R> & { firstPage(): Promise<Page<R>> } {
    return this.transport.list<R>(`${this.path}/${seg(id)}/${name}`, query ?? {});
  }
}

/** Create, retrieve, update, delete and list. */
export class Resource<T, C, U, Created = T, Q extends ListQuery = ListQuery> extends ReadResource<T, Q> {
  /** Create an object (POST, with an Idempotency-Key). */
  async create(body: C, opts?: PostOptions): Promise<Created> {
    return (await this.transport.request<Created>("POST", this.path, { body, idempotencyKey: opts?.idempotencyKey })).body;
  }

  /** Change an object: a JSON merge patch (`null` removes a field). */
  async update(id: string, patch: U, opts?: WriteOptions): Promise<T> {
    return (await this.transport.request<T>("PATCH", `${this.path}/${seg(id)}`, { body: patch, ifMatch: opts?.ifMatch })).body;
  }

  /** Delete an object; answers the deleted object. */
  async del(id: string, opts?: WriteOptions): Promise<T> {
    return (await this.transport.request<T>("DELETE", `${this.path}/${seg(id)}`, { ifMatch: opts?.ifMatch })).body;
  }
}
