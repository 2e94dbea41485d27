/** The engine's semantic suites (DESIGN §5) on this machine, through the local executor. */
import './semantics.suite.ts';
