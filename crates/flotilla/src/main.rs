fn main() {
    println!("flotilla");
}
