// Bench fixture: a busybox-static root filesystem for the raw runc bundles.
import { execFileSync } from "node:child_process";
import { copyFile, mkdir, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";


export async function buildBusyboxRootfs(directory: string): Promise<void> {
  for (const sub of ["bin", "etc", "tmp", "proc", "dev", "sys"]) await mkdir(join(directory, sub), { recursive: true });
  await copyFile("/bin/busybox", join(directory, "bin", "busybox"));
  const applets = execFileSync("/bin/busybox", ["--list"], { encoding: "utf8" })
    .split("\n")
    .filter((name) => name !== "" && name !== "busybox" && name !== "true");
  // Like the peers' image, no `true` link: every runtime runs `/bin/busybox true`.
  await Promise.all(applets.map((applet) => symlink("busybox", join(directory, "bin", applet))));
  await writeFile(join(directory, "etc", "passwd"), "root:x:0:0:root:/root:/bin/sh\n");
  await writeFile(join(directory, "etc", "group"), "root:x:0:\n");
}
