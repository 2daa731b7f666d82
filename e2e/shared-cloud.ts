/**
 * `up FILE OWNER_PID` starts the cloud that every sharedCloud() of the e2e phase attaches to
 * and describes it in FILE; `down FILE` stops it, purges it and checks that it left no
 * namespace behind. Run by scripts/test.sh, whose PID is OWNER_PID.
 */
import { downSharedCloud, upSharedCloud } from './cloud.ts';

const [command, file, ownerPid] = process.argv.slice(2);
if (command === 'up' && file && Number(ownerPid) > 0) await upSharedCloud(file, Number(ownerPid));
else if (command === 'down' && file) await downSharedCloud(file);
else throw new Error('usage: shared-cloud.ts up FILE OWNER_PID | down FILE');
