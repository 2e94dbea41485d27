/** `directory` with `source` on this machine, through the local executor (directory-source.suite.ts). */
import './directory-source.suite.ts';
