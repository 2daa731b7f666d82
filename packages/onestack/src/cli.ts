#!/usr/bin/env node
import { Command } from 'commander';
import { sampleConfig } from '@onestack/core/config/index.ts';
import { ConfigError } from '@onestack/core/config/index.ts';
import { bootstrapIdentity } from './commands/bootstrap.ts';
import { dbSync } from './commands/db-sync.ts';
import { down } from './commands/down.ts';
import { logs } from './commands/logs.ts';
import { rotateTokenKeys } from './commands/rotate-keys.ts';
import { serve } from './commands/serve.ts';
import { DEFAULT_SSH_USER, ssh } from './commands/ssh.ts';
import { status } from './commands/status.ts';
import { up } from './commands/up.ts';
import { loadOrCreateSecrets } from './secrets.ts';
import { ALL_GROUPS, loadSettings } from './settings.ts';
import { registerSwiftRingCli } from './swift-ring-cli.ts';

const program = new Command();
program
  .name('onestack')
  .description('OpenStack in one command: Keystone and friends, in TypeScript')
  .option('-c, --config-file <path>', 'configuration file (default: /etc/onestack/onestack.conf when present)');

const cfg = () => program.opts<{ configFile?: string }>().configFile;

program
  .command('up')
  .description('bring the cloud up (foreground; Ctrl-C stops it)')
  .option('-d, --detach', 'run in the background and return once every service answers')
  .action(async (o: { detach?: boolean }) => up({ configFile: cfg(), detach: o.detach }));

program
  .command('down')
  .description('stop a running cloud')
  .option('--purge', 'also delete the state directory and the clouds.yaml entries')
  .action(async (o: { purge?: boolean }) => down({ configFile: cfg(), purge: o.purge }));

program
  .command('status')
  .description('show each service: up or down, URL, version, process memory')
  .option('--json', 'machine-readable output')
  .action(async (o: { json?: boolean }) => {
    if (!(await status({ configFile: cfg(), json: o.json }))) process.exitCode = 3;
  });

program
  .command('serve <service>')
  .description('run one service alone (the unit of scale-out)')
  .option('-w, --workers <n>', 'processes sharing the port, one core each', (v) => Number(v), 1)
  .action(async (service: string, o: { workers: number }) => serve(service, { configFile: cfg(), workers: o.workers }));

program
  .command('bootstrap')
  .description('create or repair the admin and demo accounts, roles, region and catalog (keystone-manage bootstrap)')
  .action(async () => {
    const settings = loadSettings(cfg());
    await bootstrapIdentity(settings, loadOrCreateSecrets(settings.stateDir).secrets);
    console.log('bootstrap complete');
  });

program
  .command('keystone')
  .description('identity maintenance (keystone-manage)')
  .command('rotate-keys')
  .description('rotate the Fernet token keys; live tokens stay valid until their key ages out')
  .action(() => {
    const dir = rotateTokenKeys(loadSettings(cfg()));
    console.log(`rotated Fernet keys in ${dir}`);
  });

program
  .command('db')
  .description('database maintenance')
  .command('sync [service]')
  .description('apply pending schema migrations')
  .action(async (service?: string) => dbSync(service, { configFile: cfg() }));

program
  .command('config')
  .description('configuration')
  .command('sample')
  .description('print every option with its default and help')
  .action(() => {
    process.stdout.write(sampleConfig(ALL_GROUPS));
  });

program
  .command('logs <service>')
  .description("print a service's log")
  .option('-f, --follow', 'keep printing new lines')
  .option('-n, --lines <n>', 'how many recent lines', (v) => Number(v), 200)
  .option('--json', 'raw JSON lines')
  .action(async (service: string, o: { follow?: boolean; lines?: number; json?: boolean }) => logs(service, { configFile: cfg(), ...o }));

program
  .command('ssh <server> [command...]')
  .description("ssh into a server (name or id) at its floating IP, else its fixed IP, from the namespace that reaches it (root)")
  .option('--cloud <name>', 'clouds.yaml cloud to find the server as (default: $OS_CLOUD, else onestack-demo)')
  .option('-i, --identity <file>', 'private key file')
  .option('-l, --login <user>', `user to log in as (default: ${DEFAULT_SSH_USER}, the guest image's)`)
  .option('-o, --option <option>', 'an ssh -o option (repeatable)', (v: string, all: string[]) => [...all, v], [] as string[])
  .action(async (server: string, command: string[], o: { cloud?: string; identity?: string; login?: string; option?: string[] }) => {
    process.exitCode = await ssh(server, command, { configFile: cfg(), ...o });
  });

registerSwiftRingCli(program);

program.parseAsync(process.argv).catch((e: unknown) => {
  if (e instanceof ConfigError) console.error(e.message);
  else console.error(`onestack: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
