// The languages of Contract 2, their editor modes (loaded on demand: one chunk each) and the
// starter program a new room shows. Every starter reads stdin, so Run shows input flowing in.

import type { Extension } from '@codemirror/state';

export type LanguageId = 'python' | 'javascript' | 'c' | 'cpp' | 'go' | 'rust';

export interface Language {
  id: LanguageId;
  name: string;
  /** The version the runner image has, until GET /api/v1/languages says otherwise. */
  version: string;
  /** The project's entry file (Contract 2b): single-file rooms hold only this one. */
  entry: string;
  /** File name endings this language's editor mode highlights. */
  extensions: string[];
  /** One indentation step. */
  indent: string;
  starter: string;
  mode: () => Promise<Extension>;
}

export const DEFAULT_LANGUAGE: LanguageId = 'python';

/** What the stdin box holds in a new room. */
export const STARTER_STDIN = 'Ada\nGrace\nLinus\n';

export const LANGUAGES: Language[] = [
  {
    id: 'python',
    entry: 'main.py',
    extensions: ['.py'],
    name: 'Python',
    version: '3.11',
    indent: '    ',
    mode: () => import('@codemirror/lang-python').then((m) => m.python()),
    starter: `# Reads names from stdin (the Input box) and greets each one.
import sys


def greet(name: str) -> str:
    return f"Hello, {name}!"


names = [line.strip() for line in sys.stdin if line.strip()]
for name in names or ["world"]:
    print(greet(name))
print(f"{len(names)} name(s) read", file=sys.stderr)
`,
  },
  {
    id: 'javascript',
    entry: 'main.js',
    extensions: ['.js', '.mjs', '.cjs'],
    name: 'JavaScript',
    version: 'Node 18',
    indent: '  ',
    mode: () => import('@codemirror/lang-javascript').then((m) => m.javascript()),
    starter: `// Reads names from stdin (the Input box) and greets each one.
const input = require('node:fs').readFileSync(0, 'utf8');
const names = input.split('\\n').map((line) => line.trim()).filter(Boolean);

const greet = (name) => \`Hello, \${name}!\`;
for (const name of names.length ? names : ['world']) {
  console.log(greet(name));
}
console.error(\`\${names.length} name(s) read\`);
`,
  },
  {
    id: 'c',
    entry: 'main.c',
    extensions: ['.c', '.h'],
    name: 'C',
    version: 'GCC 12',
    indent: '    ',
    mode: () => import('@codemirror/lang-cpp').then((m) => m.cpp()),
    starter: `// Reads names from stdin (the Input box) and greets each one.
#include <stdio.h>
#include <string.h>

int main(void) {
    char line[256];
    int count = 0;
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\\r\\n")] = '\\0';
        if (line[0] == '\\0') continue;
        printf("Hello, %s!\\n", line);
        count++;
    }
    if (count == 0) puts("Hello, world!");
    fprintf(stderr, "%d name(s) read\\n", count);
    return 0;
}
`,
  },
  {
    id: 'cpp',
    entry: 'main.cpp',
    extensions: ['.cpp', '.cc', '.cxx', '.hpp', '.hh', '.hxx'],
    name: 'C++',
    version: 'G++ 12, C++17',
    indent: '    ',
    mode: () => import('@codemirror/lang-cpp').then((m) => m.cpp()),
    starter: `// Reads names from stdin (the Input box) and greets each one.
#include <iostream>
#include <string>
#include <vector>

int main() {
    std::vector<std::string> names;
    for (std::string line; std::getline(std::cin, line);) {
        if (!line.empty()) names.push_back(line);
    }
    std::cerr << names.size() << " name(s) read\\n";
    if (names.empty()) names.push_back("world");
    for (const auto& name : names) {
        std::cout << "Hello, " << name << "!\\n";
    }
}
`,
  },
  {
    id: 'go',
    entry: 'main.go',
    extensions: ['.go'],
    name: 'Go',
    version: '1.19',
    indent: '\t',
    mode: () => import('@codemirror/lang-go').then((m) => m.go()),
    starter: `// Reads names from stdin (the Input box) and greets each one.
package main

import (
\t"bufio"
\t"fmt"
\t"os"
\t"strings"
)

func main() {
\tvar names []string
\tscanner := bufio.NewScanner(os.Stdin)
\tfor scanner.Scan() {
\t\tif name := strings.TrimSpace(scanner.Text()); name != "" {
\t\t\tnames = append(names, name)
\t\t}
\t}
\tfmt.Fprintf(os.Stderr, "%d name(s) read\\n", len(names))
\tif len(names) == 0 {
\t\tnames = []string{"world"}
\t}
\tfor _, name := range names {
\t\tfmt.Printf("Hello, %s!\\n", name)
\t}
}
`,
  },
  {
    id: 'rust',
    entry: 'main.rs',
    extensions: ['.rs'],
    name: 'Rust',
    version: '2021 edition',
    indent: '    ',
    mode: () => import('@codemirror/lang-rust').then((m) => m.rust()),
    starter: `// Reads names from stdin (the Input box) and greets each one.
use std::io::{self, BufRead};

fn main() {
    let mut names: Vec<String> = io::stdin()
        .lock()
        .lines()
        .map_while(Result::ok)
        .map(|line| line.trim().to_string())
        .filter(|line| !line.is_empty())
        .collect();
    eprintln!("{} name(s) read", names.len());
    if names.is_empty() {
        names.push("world".to_string());
    }
    for name in &names {
        println!("Hello, {name}!");
    }
}
`,
  },
];

export function languageById(id: unknown): Language | undefined {
  return LANGUAGES.find((l) => l.id === id);
}

/** The language whose editor mode suits the file `path` (by its ending), if any. */
export function languageOfFile(path: string): Language | undefined {
  const dot = path.lastIndexOf('.');
  const ending = dot < 0 ? '' : path.slice(dot).toLowerCase();
  return LANGUAGES.find((l) => l.extensions.includes(ending));
}
