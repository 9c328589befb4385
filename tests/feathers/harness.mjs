// Reference for the differential test: a Feathers memory service holding
// the same documents as the hub. Reads JSON lines on stdin:
//   {"docs": [...]}            load documents, in creation order
//   {"query": {...}}           find; answers {"ids": [...], "total": n}
//   {"bench": {...}, "seconds": s}  repeat the query for about s seconds;
//                              answers {"perSecond": x, "runs": n}
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
      const budget = (msg.seconds || 2) * 1e9
      const t = process.hrtime.bigint()
      let runs = 0
      let first = null
      while (Number(process.hrtime.bigint() - t) < budget || runs < 3) {
        const r = await service.find({ query: structuredClone(msg.bench) })
        if (first === null) first = { ids: r.data.map((d) => d.id), total: r.total }
        runs++
      }
      const secs = Number(process.hrtime.bigint() - t) / 1e9
      out({ perSecond: runs / secs, runs, ...first })
    }
  } catch (e) {
    out({ error: String(e && e.message ? e.message : e) })
  }
}
