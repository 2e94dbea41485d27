/** The build child's entry point when Cairn runs from source (tests); the built command uses `cairn __build-child`. */
import { buildChild } from './child.ts';

buildChild();
