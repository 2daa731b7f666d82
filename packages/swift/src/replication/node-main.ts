/**
 * One storage node (account + container + object servers on one port) as a
 * process of its own, for the durability tests:
 *
 *   node --import tsx node-main.ts <state_dir> <devices_dir> <port>
 *
 * The hash path salt comes from <state_dir>/swift/swift.conf. Prints
 * "ready <port>" once listening; SIGTERM closes it, SIGKILL is the point.
 */
import pino from 'pino';
import { loadOrCreateHashPathConf } from '../common/hash-path.ts';
import { createStorageNode } from '../storage/storage-node.ts';

const [stateDir, devices, portArg] = process.argv.slice(2);
if (!stateDir || !devices || !portArg) {
  process.stderr.write('usage: node-main.ts <state_dir> <devices_dir> <port>\n');
  process.exit(2);
}
const logger = pino({ level: process.env.ONESTACK_TEST_LOG ?? 'silent' });
const server = createStorageNode({ devices, hashPath: loadOrCreateHashPathConf(stateDir), logger, accountReportDelayMs: 100 });
server.listen(Number(portArg), '127.0.0.1', () => process.stdout.write(`ready ${portArg}\n`));
process.on('SIGTERM', () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
});
