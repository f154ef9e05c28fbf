// V8 settings for every gfs process, set before the rest of the program is loaded (cli.ts imports
// this module first).
//
// A budget of 8,000 instead of V8's ~66,000 (--interrupt-budget) lets hot functions be optimized
// after a fraction of the calls: a daemon's request paths run interpreted for a long time
// otherwise. Measured on a fresh dev cluster (two runs each), 2000 small files through the mount:
// the first 2000 355-365 -> 438-461 files/s, the next 2000 637 -> 694-713.

import { setFlagsFromString } from 'node:v8';

setFlagsFromString('--interrupt-budget=8000');
