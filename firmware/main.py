# Board entry point: MicroPython runs this file after boot.py.
from pwfw.app import main

main()
