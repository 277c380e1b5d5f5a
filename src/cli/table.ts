/**
 * Column layout and ages as kubectl prints them, so output pasted from a kubectl tutorial lines
 * up the same way with ingressd.
 *
 * kubectl lays out both `get` tables and `describe` text with Go's text/tabwriter: cells end at a
 * tab, and a column is as wide as its widest cell in a run of consecutive lines that have a cell
 * in that column (a "column block"). {@link tabulate} reproduces that algorithm, including its
 * quirks (a line with fewer cells ends the block, so `describe` sections align independently).
 */

/** Padding and minimum cell width, as the two tabwriters kubectl uses are configured. */
export interface TabOptions {
  /** Minimum width of a cell, padding included. */
  minWidth: number
  /** Spaces added to the widest cell of a column. */
  padding: number
}

/** `kubectl get` tables: tabwriter.NewWriter(out, 6, 4, 3, ' ', 0). */
export const TABLE_TABS: TabOptions = { minWidth: 6, padding: 3 }

/** `kubectl describe` text: tabwriter.NewWriter(out, 0, 8, 2, ' ', 0). */
export const DESCRIBE_TABS: TabOptions = { minWidth: 0, padding: 2 }

/** Display width of a cell: code points, as tabwriter counts UTF-8 runes. */
function width (text: string): number {
  return Array.from(text).length
}

/**
 * Lays out tab-separated text as Go's text/tabwriter does (left-aligned, space padding): every
 * tab-terminated cell is padded to its column block's width; the last cell of a line is not part
 * of a column and is written as it is.
 */
export function tabulate (text: string, opts: TabOptions = DESCRIBE_TABS): string {
  const trailingNewline = text.endsWith('\n')
  const lines = (trailingNewline ? text.slice(0, -1) : text).split('\n').map(l => l.split('\t'))
  const widths: number[] = []
  const out: string[] = new Array<string>(lines.length)

  const writeLines = (from: number, to: number): void => {
    for (let i = from; i < to; i++) {
      const cells = lines[i] as string[]
      let line = ''
      cells.forEach((cell, j) => {
        line += cell
        const w = widths[j]
        if (j < cells.length - 1 && w !== undefined) line += ' '.repeat(Math.max(0, w - width(cell)))
      })
      out[i] = line
    }
  }

  // tabwriter's format(): find the blocks of `column`, size each, recurse for the next column.
  const format = (line0: number, line1: number): void => {
    const column = widths.length
    let start = line0
    for (let i = line0; i < line1; i++) {
      if (column >= (lines[i] as string[]).length - 1) continue
      writeLines(start, i)
      const blockStart = i
      let w = opts.minWidth
      for (; i < line1; i++) {
        const cells = lines[i] as string[]
        if (column >= cells.length - 1) break
        w = Math.max(w, width(cells[column] as string) + opts.padding)
      }
      widths.push(w)
      format(blockStart, i)
      widths.pop()
      start = i
      i-- // the loop's i++ revisits the line that ended the block
    }
    writeLines(start, line1)
  }

  format(0, lines.length)
  return out.join('\n') + (trailingNewline ? '\n' : '')
}

/** A table as `kubectl get` prints it: upper-case headers, then one row per object. */
export function formatTable (headers: string[], rows: string[][]): string {
  return tabulate([headers, ...rows].map(cells => cells.join('\t')).join('\n') + '\n', TABLE_TABS)
}

/**
 * A duration as kubectl's AGE column shows it (k8s.io/apimachinery's duration.HumanDuration):
 * `45s`, `3m20s`, `15m`, `2h5m`, `10h`, `3d4h`, `12d`, `2y30d`.
 */
export function humanDuration (ms: number): string {
  const seconds = Math.trunc(ms / 1000)
  if (seconds < -1) return '<invalid>'
  if (seconds < 0) return '0s'
  if (seconds < 60 * 2) return `${seconds}s`
  const minutes = Math.trunc(seconds / 60)
  if (minutes < 10) {
    const s = seconds % 60
    return s === 0 ? `${minutes}m` : `${minutes}m${s}s`
  }
  if (minutes < 60 * 3) return `${minutes}m`
  const hours = Math.trunc(minutes / 60)
  if (hours < 8) {
    const m = minutes % 60
    return m === 0 ? `${hours}h` : `${hours}h${m}m`
  }
  if (hours < 48) return `${hours}h`
  if (hours < 24 * 8) {
    const h = hours % 24
    return h === 0 ? `${Math.trunc(hours / 24)}d` : `${Math.trunc(hours / 24)}d${h}h`
  }
  if (hours < 24 * 365 * 2) return `${Math.trunc(hours / 24)}d`
  if (hours < 24 * 365 * 8) {
    const days = Math.trunc(hours / 24) % 365
    return days === 0 ? `${Math.trunc(hours / 24 / 365)}y` : `${Math.trunc(hours / 24 / 365)}y${days}d`
  }
  return `${Math.trunc(hours / 24 / 365)}y`
}

/** The AGE of an object created at `timestamp` (ISO 8601), or `<unknown>` without one. */
export function age (timestamp: unknown, now: Date = new Date()): string {
  if (typeof timestamp !== 'string' || timestamp === '') return '<unknown>'
  const created = Date.parse(timestamp)
  if (Number.isNaN(created)) return '<unknown>'
  return humanDuration(now.getTime() - created)
}
