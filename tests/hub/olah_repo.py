"""Writes a Hugging Face-style git repository where olah's `mirrors-path` serves it: small
files in git, large ones (over 1 KiB, as the Hub's .gitattributes would send to LFS) as LFS
pointers with their objects under .git/lfs/objects, as `git lfs` leaves them.

usage: olah_repo.py MIRRORS_PATH ORG/REPO REPO_PATH=LOCAL_FILE... [--branch NAME]
Prints the commit.
"""

import hashlib
import os
import shutil
import subprocess
import sys

LFS_OVER = 1024


def main():
    args = sys.argv[1:]
    branch = "main"
    if "--branch" in args:
        at = args.index("--branch")
        branch = args[at + 1]
        del args[at : at + 2]
    root, repo, files = args[0], args[1], args[2:]
    org, name = repo.split("/")
    work = os.path.join(root, "models", org, name)
    os.makedirs(work, exist_ok=True)
    git = lambda *a: subprocess.run(["git", "-C", work, *a], check=True, capture_output=True, text=True).stdout
    if not os.path.isdir(os.path.join(work, ".git")):
        git("init", "-q", "-b", "main")
        git("config", "user.email", "tests@porten")
        git("config", "user.name", "porten tests")
    for spec in files:
        path, local = spec.split("=", 1)
        target = os.path.join(work, path)
        os.makedirs(os.path.dirname(target) or work, exist_ok=True)
        if os.path.getsize(local) > LFS_OVER:
            data = open(local, "rb").read()
            oid = hashlib.sha256(data).hexdigest()
            obj = os.path.join(work, ".git", "lfs", "objects", oid[:2], oid[2:4], oid)
            os.makedirs(os.path.dirname(obj), exist_ok=True)
            shutil.copyfile(local, obj)
            with open(target, "w") as pointer:
                pointer.write(f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {len(data)}\n")
        else:
            shutil.copyfile(local, target)
    git("add", "-A")
    git("commit", "-q", "-m", "model files")
    if branch != "main":
        git("branch", "-f", branch)
    print(git("rev-parse", "HEAD").strip())


main()
