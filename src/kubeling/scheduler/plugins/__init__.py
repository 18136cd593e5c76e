"""In-tree scheduler plugins, one module per plugin, each with `NAME`, a class and `new(args, handle)`."""
