// spacedigest console. The only script: pages work without it.
