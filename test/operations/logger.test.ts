/**
 * The process logger's destination gathers lines and writes them joined: 16 KiB at a time, or
 * every 100 ms, in order, and all of what is left when flushed.
 */
import t from 'tap'
import { pino } from 'pino'
import { BatchedDestination, type LineSink } from '../../src/logger.js'

function recordingSink (): LineSink & { writes: string[], flushes: number } {
  const sink = {
    writes: [] as string[],
    flushes: 0,
    write (text: string) { sink.writes.push(text) },
    flush (cb?: (err?: Error) => void) { sink.flushes++; cb?.() }
  }
  return sink
}

const linesOf = (writes: string[]): string[] => writes.join('').split('\n').filter(l => l !== '')

t.test('lines reach the sink in batches, in order, and none waits more than about 100 ms', async t => {
  const sink = recordingSink()
  const logger = pino({ level: 'info', base: null, timestamp: false }, new BatchedDestination(sink))
  for (let i = 0; i < 500; i++) logger.info({ reqId: `r${i}`, path: `/${i}`, host: 'web.example.com', client: '127.0.0.1' }, 'access')
  // 500 lines of ~90 characters: 16 KiB batches went out as they filled, the rest waits for the timer.
  const before = linesOf(sink.writes)
  t.ok(before.length > 0 && before.length < 500, `${before.length} of 500 lines written before the timer`)
  t.ok(sink.writes.length < 10, `${sink.writes.length} writes for ${before.length} lines`)
  await new Promise(resolve => setTimeout(resolve, 250))
  const all = linesOf(sink.writes)
  t.equal(all.length, 500, 'the rest arrived on the timer')
  t.same(all.map(l => (JSON.parse(l) as { reqId: string }).reqId), Array.from({ length: 500 }, (_, i) => `r${i}`), 'in order')
  t.ok(sink.flushes > 0, 'the timer has the sink write at once')
})

t.test('logger.flush() writes what is gathered and waits for the sink', async t => {
  const sink = recordingSink()
  const logger = pino({ level: 'info' }, new BatchedDestination(sink))
  logger.warn('one')
  logger.info('two')
  t.same(sink.writes, [], 'nothing written yet')
  await new Promise<void>(resolve => logger.flush(() => resolve()))
  t.same(linesOf(sink.writes).map(l => (JSON.parse(l) as { msg: string }).msg), ['one', 'two'])
  t.equal(sink.flushes, 1)
})
