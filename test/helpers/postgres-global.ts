/**
 * tap's `before` and `after` hook (.taprc) for the shared PostgreSQL (test/helpers/postgres.ts).
 *
 * One file for both: tap runs a hook as `node <loaders> <file>` with nothing telling the two
 * apart, so the state says which one this is. The run's folder is named after the runner's pid
 * (this process's parent, and every test file's). `before` finds none: it sweeps clusters left by
 * dead runs and creates it. `after` (which tap runs only if `before` succeeded) finds it: it stops
 * the cluster, if a test started one, and removes the folder before tap exits. Without these
 * hooks the helpers still work; the folder's watchdog then cleans up just after the runner exits.
 */
import { existsSync } from 'node:fs'
import { finishSharedRun, prepareSharedRun, sharedRunDir } from './postgres.js'

const runner = process.ppid
if (existsSync(sharedRunDir(runner))) finishSharedRun(runner)
else await prepareSharedRun(runner)
