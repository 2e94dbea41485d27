/** What a tag may be (DESIGN §4a): `--tags a,b` splits on commas, so none may hold one. */
export const TAG_NAME = /^[A-Za-z0-9_.-]+$/;
