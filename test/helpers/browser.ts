/**
 * Headless Chromium for browser tests: Debian's `chromium` package (or CHROMIUM_PATH) driven by
 * playwright-core. No browser is downloaded; when none is installed the tests skip and say how to
 * install one.
 */
import { existsSync } from 'node:fs'
import { chromium, type Browser } from 'playwright-core'

const fromEnv = process.env.CHROMIUM_PATH
export const CHROMIUM_PATH = fromEnv !== undefined && fromEnv !== '' ? fromEnv : '/usr/bin/chromium'

export const CHROMIUM_MISSING = "Chromium not found: apt-get install chromium (CI's .ci/run installs it)"

/** The `skip` option for a browser test: false when Chromium is there, else the message. */
export function skipWithoutChromium (): string | false {
  return existsSync(CHROMIUM_PATH) ? false : CHROMIUM_MISSING
}

/**
 * Flags for a closed network: without the background-networking ones Chromium keeps dialling out
 * (updates, sync, QUIC) and those refused connections slow it down. Playwright gives every launch a
 * fresh temporary profile (--user-data-dir) and removes it on close.
 */
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync'
]

interface Closable { teardown: (fn: () => Promise<void> | void) => void }

/** Launches Chromium and registers its close with the test. */
export async function launchChromium (t: Closable): Promise<Browser> {
  const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: ARGS, timeout: 20_000 })
  t.teardown(async () => { await browser.close() })
  return browser
}
