/** `noop`: a definition only (no disk): a guest's domain, or a container's `.nspawn` settings. */
import { Builder } from '../builder.ts';
import { domainXml, nspawnSettings } from '../definitions.ts';

export default class Noop extends Builder {
  override async create(): Promise<string> {
    return this.ctx.kind === 'container' ? nspawnSettings(this.ctx) : domainXml(this.ctx);
  }
}
