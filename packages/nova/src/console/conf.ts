import { defineGroup, opt } from '@onestack/core/config/index.ts';

/**
 * The console proxies and their tokens, with upstream's option names ([vnc] novncproxy_*,
 * [serial_console] serialproxy_* and base_url, [consoleauth] token_ttl) in one section.
 */
export const consoleOptions = defineGroup('nova_console', {
  novncproxy_port: opt.int({ default: 6080, min: 0, max: 65535, help: '[vnc] novncproxy_port: the VNC websocket proxy; 0: not served.' }),
  novncproxy_base_url: opt.string({ default: '', help: '[vnc] novncproxy_base_url: the page console URLs point at. Empty: http://<bind_host>:<novncproxy_port>/vnc_lite.html.' }),
  serialproxy_port: opt.int({ default: 6083, min: 0, max: 65535, help: '[serial_console] serialproxy_port: the serial console websocket proxy; 0: not served.' }),
  serialproxy_base_url: opt.string({ default: '', help: '[serial_console] base_url. Empty: ws://<bind_host>:<serialproxy_port>/.' }),
  token_ttl: opt.int({ default: 600, min: 1, help: '[consoleauth] token_ttl: seconds a console URL stays valid.' }),
});

export type ConsoleValues = { [K in keyof typeof consoleOptions.options]: unknown };

export interface ConsoleConfig {
  novncPort: number;
  serialPort: number;
  novncBaseUrl: string;
  serialBaseUrl: string;
  tokenTtlMs: number;
}

export function consoleConfig(v: Partial<ConsoleValues> = {}, bindHost = '127.0.0.1'): ConsoleConfig {
  const novncPort = Number(v.novncproxy_port ?? 6080);
  const serialPort = Number(v.serialproxy_port ?? 6083);
  return {
    novncPort,
    serialPort,
    novncBaseUrl: String(v.novncproxy_base_url || `http://${bindHost}:${novncPort}/vnc_lite.html`),
    serialBaseUrl: String(v.serialproxy_base_url || `ws://${bindHost}:${serialPort}/`),
    tokenTtlMs: Number(v.token_ttl ?? 600) * 1000,
  };
}
