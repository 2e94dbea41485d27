/** DESIGN §5's run semantics: the suites that run once per executor (engine.test.ts, engine-ssh.test.ts). */
import './engine.suite.ts';
import './scenarios.suite.ts';
