/** An ssh2 channel as the shell protocol's stream (shell/stream.ts). */
import type { ClientChannel } from 'ssh2';
import type { ShellStream } from '../shell/stream.ts';

export function channelStream(channel: ClientChannel): ShellStream {
  return {
    stdout: channel,
    stderr: channel.stderr,
    stdin: channel,
    onClose(listener) {
      channel.on('close', () => listener());
    },
  };
}
