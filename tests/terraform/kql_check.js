// Parse and bind KQL files with Microsoft's Kusto language service
// (npm @kusto/language-service-next), against the tables the files themselves create.
// Usage: node kql_check.js <package dir> <file.kql>...; prints one line per diagnostic, exits 1 on any.
const fs = require('fs');
const vm = require('vm');
const [dir, ...files] = process.argv.slice(2);
global.window = global;
global.self = global;
vm.runInThisContext(fs.readFileSync(dir + '/bridge.min.js', 'utf8'));
vm.runInThisContext(fs.readFileSync(dir + '/Kusto.Language.Bridge.min.js', 'utf8'));
const K = Kusto.Language;
const S = K.Symbols;
const table = (name, cols) =>
  new S.TableSymbol.$ctor4(name, cols.map(([n, t]) => new S.ColumnSymbol(n, S.ScalarTypes.GetSymbol(t))));
// Tables as the checked files create them (`.create-merge table NAME (col: type, ...)`, as
// `sluice schema --format kusto` writes them): one source of truth, no columns typed here.
const tables = [];
for (const file of files) {
  const text = fs.readFileSync(file, 'utf8');
  for (const m of text.matchAll(/^\.create-merge table (\w+) \(([^)]*)\)/gm)) {
    const cols = m[2].split(',').map((c) => c.split(':').map((x) => x.trim().replace(/^\['(.*)'\]$/, '$1')));
    tables.push(table(m[1], cols));
  }
}
if (!tables.length) {
  console.log('no .create-merge table command in ' + files.join(' '));
  process.exit(1);
}
const db = new S.DatabaseSymbol.ctor('sluice', tables);
const globals = K.GlobalState.Default.WithDatabase(db);
let count = 0;
for (const file of files) {
  const text = fs.readFileSync(file, 'utf8');
  const blocks = K.Editor.CodeScript.From$1(text, globals).Blocks;
  for (let i = 0; i < blocks.Count; i++) {
    const diags = blocks.getItem(i).Service.GetDiagnostics();
    for (let j = 0; j < diags.Count; j++) {
      const d = diags.getItem(j);
      const line = text.slice(0, d.Start).split('\n').length;
      console.log(`${file}:${line}: ${d.Severity}: ${d.Message}`);
      count++;
    }
  }
}
process.exit(count ? 1 : 0);
