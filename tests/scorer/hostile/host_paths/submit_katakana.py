import os

import numpy as np

checked = 0
leaks = set()


def same_inside(path, st):
    """Whether ``path`` names, inside the sandbox, the very object ``st`` describes: if not, the path
    is one of the host's (a folder, a file name, a version) that the kernel showed us."""
    try:
        here = os.stat(path.removesuffix(" (deleted)"))
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (st.st_dev, st.st_ino)


def leak(where, path):
    leaks.add(f"HOST PATH {where}: {path}")


def look():
    global checked
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        for name in (*(f"fd/{fd}" for fd in os.listdir(f"/proc/{pid}/fd")), "cwd", "root", "exe"):
            try:
                target, st = os.readlink(f"/proc/{pid}/{name}"), os.stat(f"/proc/{pid}/{name}")
            except OSError:
                continue  # listdir's own descriptor, closed by now
            checked += 1
            if target.startswith("/") and not same_inside(target, st):
                leak(f"/proc/{pid}/{name}", target)
        for line in open(f"/proc/{pid}/mountinfo"):
            root, point = line.split()[3:5]
            checked += 1
            # A mount shows the path of its root inside its own filesystem: fine for a whole
            # filesystem (/), a bind at the same path (/usr), a host device (/null at /dev/null) or
            # data bwrap copied in; anything else is a host folder bound under another name.
            device = point.startswith("/dev/") and root == "/" + point.rsplit("/", 1)[1]
            if root not in ("/", point, "/newroot") and not device and not root.startswith("/bindfile"):
                leak(f"/proc/{pid}/mountinfo", f"{root} at {point}")
        for line in open(f"/proc/{pid}/maps"):
            fields = line.split(maxsplit=5)
            if len(fields) == 6 and fields[5].startswith("/") and fields[4] != "0":
                checked += 1
                path = fields[5].strip().removesuffix(" (deleted)")
                try:
                    inode = os.stat(path).st_ino
                except OSError:
                    inode = None
                if inode != int(fields[4]):
                    leak(f"/proc/{pid}/maps", path)


look()  # at import, as the harness hands over
checked_in_predict = []


def predict(test_data):
    if not checked_in_predict:
        checked_in_predict.append(True)
        look()  # and with predict running
        print("\n".join(sorted(leaks)))
        print(f"CHECKED {checked} paths")
    return np.zeros(len(test_data), dtype=int)
