say() { printf 'aistudio-ssh: %s\n' "$*"; }
