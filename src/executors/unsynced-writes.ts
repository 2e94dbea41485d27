/**
 * Which writes make their new content durable (fsync) before the rename that puts it in place.
 *
 * The fsync is there so that a crash never loses content that was already on disk: without it, a
 * power cut after the rename, before the kernel has written the new data back, can leave the file
 * empty, and the old content would be gone. That risk exists only where the rename replaces
 * something this run did not put there itself. A path that held nothing, or only what this run
 * wrote there without an fsync, has no old content to lose: after such a crash the file may be
 * empty, and the next run finds it wrong and writes it again. So a run that creates files does
 * not wait on the disk once per file (a shell script and Ansible's atomic_move never do), and a
 * run that replaces files still fsyncs each before its rename.
 */
export class UnsyncedWrites {
  /** Paths this run renamed new content into without an fsync. */
  private readonly paths = new Set<string>();

  /** Whether a write to `path`, where something is (`occupied`) or nothing is, fsyncs before its rename. */
  mustSync(path: string, occupied: boolean): boolean {
    return occupied && !this.paths.has(path);
  }

  /** Records a write that `mustSync` let through without an fsync. */
  add(path: string): void {
    this.paths.add(path);
  }
}
