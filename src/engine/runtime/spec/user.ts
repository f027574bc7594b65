import { InvalidArgumentError } from "../../../common/errors.js";
import { readRootfsTextFile } from "./rootfs-file.js";
import type { OciUser } from "./types.js";

/** Largest /etc/passwd or /etc/group read from an image. */
export const accountFileBytesMax = 4 * 1024 * 1024;
/** Highest uid/gid accepted (the kernel's is 2^32-2). */
const idMax = 4294967294;

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

function parseId(text: string): number | null {
  if (!/^[0-9]{1,10}$/.test(text)) return null;
  const value = Number(text);
  return value <= idMax ? value : null;
}

/** Lines of a passwd file; malformed lines are skipped as libc does. */
export function parsePasswd(text: string): PasswdEntry[] {
  const entries: PasswdEntry[] = [];
  for (const line of text.split("\n")) {
    const fields = line.split(":");
    if (fields.length < 7 || line.startsWith("#")) continue;
    const uid = parseId(fields[2] ?? "");
    const gid = parseId(fields[3] ?? "");
    if (uid === null || gid === null) continue;
    entries.push({ name: fields[0] ?? "", uid, gid, home: fields[5] ?? "/" });
  }
  return entries;
}

/** Lines of a group file; malformed lines are skipped as libc does. */
export function parseGroup(text: string): GroupEntry[] {
  const entries: GroupEntry[] = [];
  for (const line of text.split("\n")) {
    const fields = line.split(":");
    if (fields.length < 4 || line.startsWith("#")) continue;
    const gid = parseId(fields[2] ?? "");
    if (gid === null) continue;
    const members = (fields[3] ?? "").split(",").filter((member) => member !== "");
    entries.push({ name: fields[0] ?? "", gid, members });
  }
  return entries;
}

export interface ResolvedUser {
  user: OciUser;
  /** The user's home directory, for HOME (docker sets it from passwd, "/" otherwise). */
  home: string;
}

function resolveGroup(spec: string, groups: GroupEntry[] | null): number {
  const numeric = parseId(spec);
  if (numeric !== null) return numeric;
  const found = groups?.find((group) => group.name === spec);
  if (found === undefined) {
    throw new InvalidArgumentError(
      `unable to find group "${spec}": no matching entries in the container's /etc/group; use a numeric gid`,
    );
  }
  return found.gid;
}

/** A root filesystem's /etc/passwd and /etc/group, as text; null where it has none. */
export interface AccountFiles {
  passwd: string | null;
  group: string | null;
}

/** Reads the account files of the root filesystem at `rootfs` without following links out of it. */
export function readAccountFiles(rootfs: string): AccountFiles {
  return {
    passwd: readRootfsTextFile(rootfs, "/etc/passwd", accountFileBytesMax),
    group: readRootfsTextFile(rootfs, "/etc/group", accountFileBytesMax),
  };
}

/**
 * Resolves a Docker `--user` value (`name`, `uid`, `name:group`, `uid:gid`; empty means
 * root) against the container's account files. A numeric uid not in passwd is allowed
 * with gid 0 (as Docker).
 */
export function resolveUser(accounts: AccountFiles, spec: string): ResolvedUser {
  const [userPart = "", groupPart] = spec.split(":", 2);
  if (spec.split(":").length > 2) {
    throw new InvalidArgumentError(`invalid user "${spec}": use name, uid, name:group or uid:gid`);
  }
  const passwd = accounts.passwd === null ? null : parsePasswd(accounts.passwd);
  const groups = accounts.group === null ? null : parseGroup(accounts.group);
  const name = userPart === "" ? "root" : userPart;
  const numericUid = parseId(name);
  const entry = passwd?.find((item) => (numericUid === null ? item.name === name : item.uid === numericUid));
  if (entry === undefined && numericUid === null && name !== "root") {
    throw new InvalidArgumentError(
      `unable to find user "${name}": no matching entries in the container's /etc/passwd; use a numeric uid`,
    );
  }
  const uid = entry?.uid ?? numericUid ?? 0;
  const gid = groupPart === undefined ? (entry?.gid ?? 0) : resolveGroup(groupPart, groups);
  const additionalGids =
    entry === undefined || groups === null
      ? []
      : groups.filter((group) => group.members.includes(entry.name) && group.gid !== gid).map((group) => group.gid);
  const user: OciUser = { uid, gid };
  if (additionalGids.length > 0) user.additionalGids = additionalGids;
  return { user, home: entry?.home ?? "/" };
}
