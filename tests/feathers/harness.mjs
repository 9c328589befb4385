// Reference for the differential test: a Feathers memory service holding
// the same documents as the hub. Reads JSON lines on stdin:
//   {"docs": [...]}            load documents, in creation order
//   {"query": {...}}           find; answers {"ids": [...], "total": n}
//   {"bench": {...}, "n": k}   run the query k times; answers {"perSecond": x}
// and writes one JSON line per request on stdout.
import { MemoryService } from '@feathersjs/memory'
import readline from 'node:readline'

let service = null
const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity })
const out = (v) => process.stdout.write(JSON.stringify(v) + '\n')

for await (const line of rl) {
  if (!line.trim()) continue
  const msg = JSON.parse(line)
  try {
    if (msg.docs) {
      service = new MemoryService({
        id: 'id',
        paginate: { default: 10, max: 100 },
        operators: ['$exists', '$and'],
        multi: true
      })
      for (const d of msg.docs) await service.create(d)
      out({ loaded: msg.docs.length })
    } else if (msg.query) {
      const r = await service.find({ query: msg.query })
      out({ ids: r.data.map((d) => d.id), total: r.total })
    } else if (msg.bench) {
      const n = msg.n || 100
      const t = process.hrtime.bigint()
      for (let i = 0; i < n; i++) await service.find({ query: structuredClone(msg.bench) })
      const secs = Number(process.hrtime.bigint() - t) / 1e9
      out({ perSecond: n / secs })
    }
  } catch (e) {
    out({ error: String(e && e.message ? e.message : e) })
  }
}
