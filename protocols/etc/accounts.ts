// /etc/passwd and /etc/group as a container has them: text in, accounts out. Pure; malformed lines are skipped,
// as libc's own parsers do.

export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
}

export interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

function records(text: string, minFields: number): string[][] {
  return text
    .split('\n')
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => line.split(':'))
    .filter((fields) => fields.length >= minFields);
}

function id(text: string | undefined): number | null {
  if (text === undefined || !/^\d{1,10}$/.test(text)) return null;
  const value = Number(text);
  return value <= 0xfffffffe ? value : null;
}

export function parsePasswd(text: string): PasswdEntry[] {
  const entries: PasswdEntry[] = [];
  for (const [name, , uidText, gidText] of records(text, 4)) {
    const uid = id(uidText);
    const gid = id(gidText);
    if (name && uid !== null && gid !== null) entries.push({ name, uid, gid });
  }
  return entries;
}

export function parseGroup(text: string): GroupEntry[] {
  const entries: GroupEntry[] = [];
  for (const [name, , gidText, members = ''] of records(text, 3)) {
    const gid = id(gidText);
    if (name && gid !== null) entries.push({ name, gid, members: members.split(',').filter(Boolean) });
  }
  return entries;
}

/** The first group of that name, as getgrnam() answers. */
export function groupByName(groups: GroupEntry[], name: string): GroupEntry | undefined {
  return groups.find((group) => group.name === name);
}
