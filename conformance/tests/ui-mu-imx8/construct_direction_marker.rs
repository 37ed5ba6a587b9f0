//! Direction markers are type states, not values users build.
use mu_imx8::Tx;

fn main() {
    let _state = Tx { _private: () };
}
