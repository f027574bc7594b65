/**
 * A pure check of the docker image reference grammar (distribution/reference):
 *
 *   reference := name [":" tag] ["@" digest]
 *   name      := [domain "/"] path-component ["/" path-component]*   (at most 255 chars)
 *   domain    := host [":" port]
 *   path-component := [a-z0-9]+ ((\.|_|__|-+) [a-z0-9]+)*
 *   tag       := [\w][\w.-]{0,127}
 *   digest    := algorithm ":" hex{32,}
 *
 * The manager only checks that a reference parses (it must not talk to the engine, which
 * resolves references itself when it pulls).
 */

export const imageNameLengthMax = 255;

const domainComponent = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const hostPattern = new RegExp(`^(?:${domainComponent}(?:\\.${domainComponent})*|\\[[0-9a-fA-F:.]+\\])(?::[0-9]+)?$`, "u");
const pathComponentPattern = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$/u;
const tagPattern = /^[\w][\w.-]{0,127}$/u;
const digestPattern = /^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$/u;

function looksLikeDomain(component: string): boolean {
  return component.includes(".") || component.includes(":") || component === "localhost" || component !== component.toLowerCase();
}

function imageNameProblem(name: string): string | undefined {
  if (name === "") return "the repository name is empty";
  if (name.length > imageNameLengthMax) return `the repository name is longer than ${imageNameLengthMax} characters`;
  const components = name.split("/");
  const first = components[0];
  if (components.length > 1 && first !== undefined && looksLikeDomain(first)) {
    if (!hostPattern.test(first)) return `"${first}" is not a valid registry host`;
    components.shift();
  }
  for (const component of components) {
    if (!pathComponentPattern.test(component)) {
      return `repository path component "${component}" must be lower-case letters and digits separated by ".", "_", "__" or "-"`;
    }
  }
  return undefined;
}

/** Why `text` is not a valid image reference, or undefined when it is. */
export function imageReferenceProblem(text: string): string | undefined {
  let rest = text;
  const at = rest.indexOf("@");
  if (at !== -1) {
    const digest = rest.slice(at + 1);
    if (!digestPattern.test(digest)) return `digest "${digest}" must be ALGORITHM:HEX with at least 32 hex digits`;
    rest = rest.slice(0, at);
  }
  const lastColon = rest.lastIndexOf(":");
  if (lastColon > rest.lastIndexOf("/")) {
    const tag = rest.slice(lastColon + 1);
    if (!tagPattern.test(tag)) return `tag "${tag}" must be 1 to 128 of [A-Za-z0-9_.-], not starting with "." or "-"`;
    rest = rest.slice(0, lastColon);
  }
  return imageNameProblem(rest);
}
