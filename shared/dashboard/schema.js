// What the dashboard knows about the API comes from the API's own OpenAPI
// document: the resources (every `GET /v1/{path}` that answers a list),
// their fields, and the event catalog. A resource added to the hub appears
// here without a change to the dashboard.

function deref(doc, schema) {
  let s = schema;
  for (let i = 0; s && s.$ref && i < 10; i += 1) {
    const name = s.$ref.replace("#/components/schemas/", "");
    s = doc.components?.schemas?.[name];
  }
  return s || {};
}

function schemaName(ref) {
  return ref ? ref.replace("#/components/schemas/", "") : null;
}

/** Human words from a path: "referral-sources" → "Referral sources". */
export function title(path) {
  const words = path.replace(/-/g, " ");
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/**
 * Every listable resource: [{path, title, schema, schemaName, canCreate,
 * description}] in the document's order.
 */
export function resources(doc) {
  const out = [];
  for (const [p, item] of Object.entries(doc.paths || {})) {
    const m = /^\/v1\/([a-z0-9-]+)$/.exec(p);
    const list = item.get;
    if (!m || !list) continue;
    // Lists page with `$limit`; views (availability) page too, but need
    // parameters of their own first.
    const params = list.parameters || [];
    if (!params.some((q) => q.name === "$limit") || params.some((q) => q.required)) continue;
    const page = list.responses?.["200"]?.content?.["application/json"]?.schema;
    let items = page?.properties?.data?.items;
    // With `$select` an item may be a selection: the object is the first choice.
    if (items?.anyOf) items = items.anyOf[0];
    if (!items) continue;
    const schema = deref(doc, items);
    out.push({
      path: m[1],
      title: title(m[1]),
      schema,
      schemaName: schemaName(items.$ref),
      canCreate: Boolean(item.post),
      description: schema.description || "",
    });
  }
  return out;
}

export function resource(doc, path) {
  return resources(doc).find((r) => r.path === path) || null;
}

export function hasPath(doc, path) {
  return Boolean(doc.paths && doc.paths[path]);
}

function isScalar(s) {
  return ["string", "integer", "number", "boolean"].includes(s.type);
}

function isRef(s) {
  return typeof s.pattern === "string" && /^\^[a-z]+_/.test(s.pattern);
}

const META = new Set(["id", "object", "livemode", "createdAt", "updatedAt", "version"]);

/**
 * The columns to show for a resource: `id`, the fields named in `$select`
 * when the query has one, else up to five scalar fields (required ones
 * first, then plain values before references), and `createdAt`.
 */
export function columns(schema, selected = []) {
  const props = schema.properties || {};
  if (selected.length) return ["id", ...selected.filter((f) => f !== "id")];
  const required = new Set(schema.required || []);
  const candidates = Object.entries(props)
    .filter(([name, s]) => !META.has(name) && isScalar(s))
    .map(([name, s], i) => ({ name, rank: required.has(name) ? 0 : s.format === "email" ? 1 : isRef(s) ? 3 : 2, i }));
  candidates.sort((a, b) => a.rank - b.rank || a.i - b.i);
  return ["id", ...candidates.slice(0, 5).map((c) => c.name), ...("createdAt" in props ? ["createdAt"] : [])];
}

/** A dotted path's value: get(doc, "address.city"). */
export function pick(doc, path) {
  let v = doc;
  for (const part of path.split(".")) {
    if (v === null || typeof v !== "object") return undefined;
    v = v[part];
  }
  return v;
}

/** The input schema of a resource's create route, if any. */
export function createSchema(doc, path) {
  const s = doc.paths?.[`/v1/${path}`]?.post?.requestBody?.content?.["application/json"]?.schema;
  return s ? deref(doc, s) : null;
}

/**
 * The event catalog: `patterns` is every value `enabledEvents` accepts
 * ("*", "patient.*", "patient.created", …), `types` every event type.
 */
export function eventCatalog(doc) {
  const create = createSchema(doc, "webhook-endpoints");
  const patterns = create?.properties?.enabledEvents?.items?.enum || [];
  const event = resource(doc, "events")?.schema;
  const types = event?.properties?.type?.enum || patterns.filter((p) => !p.includes("*"));
  return { patterns, types };
}

/**
 * The catalog as groups for a picker: [{wildcard: "patient.*", types:
 * ["patient.created", …]}], plus whether "*" is offered.
 */
export function eventGroups(patterns) {
  const groups = [];
  for (const p of patterns) {
    if (p === "*") continue;
    if (p.endsWith(".*")) groups.push({ wildcard: p, types: [] });
  }
  for (const p of patterns) {
    if (p.includes("*")) continue;
    const g = groups.find((x) => x.wildcard === `${p.split(".")[0]}.*`);
    if (g) g.types.push(p);
    else groups.push({ wildcard: null, types: [p] });
  }
  return { all: patterns.includes("*"), groups };
}
